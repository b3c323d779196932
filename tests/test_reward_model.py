"""Reward and value models: a copied Transformer, a scalar per position, read at the end."""

from __future__ import annotations

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.alignment import ScalarModel, pairwise_loss, reward_fn, sample_rollout


@pytest.fixture
def lm():
    return random_gpt(seed=0, vocab_size=7, block_size=12)


def test_from_language_model_copies_the_transformer(lm):
    model = ScalarModel.from_language_model(lm)
    ids = torch.randint(0, 7, (3, 5), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.body.hidden_states(ids), lm.hidden_states(ids))
    with torch.no_grad():
        next(model.body.parameters()).add_(1.0)
    assert not torch.equal(model.body.hidden_states(ids), lm.hidden_states(ids))  # a copy


def test_forward_is_a_linear_map_of_the_hidden_states(lm):
    model = ScalarModel.from_language_model(lm)
    ids = torch.randint(0, 7, (2, 6), generator=torch.Generator().manual_seed(1))
    expected = model.body.hidden_states(ids) @ model.head.weight[0] + model.head.bias
    torch.testing.assert_close(model(ids), expected)
    assert model(ids).shape == (2, 6)


def test_each_position_sees_only_what_came_before(lm):
    model = ScalarModel.from_language_model(lm)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    changed = ids.clone()
    changed[0, 3] = 6
    a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_score_reads_each_row_at_its_last_token_and_ignores_padding(lm):
    model = ScalarModel.from_language_model(lm)
    ids = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 1, 2]])
    lengths = torch.tensor([3, 5])
    scores = model.score(ids, lengths)
    full = model(ids)
    torch.testing.assert_close(scores, torch.stack([full[0, 2], full[1, 4]]))
    other_padding = ids.clone()
    other_padding[0, 3:] = 5
    torch.testing.assert_close(model.score(other_padding, lengths), scores)
    torch.testing.assert_close(model.score(ids, lengths.int()), scores)


@pytest.mark.parametrize(
    "lengths",
    [torch.tensor([0, 2]), torch.tensor([3, 6]), torch.tensor([2.0, 3.0]), torch.tensor([2])],
)
def test_bad_lengths_are_rejected(lm, lengths):
    model = ScalarModel.from_language_model(lm)
    with pytest.raises(ValueError, match="lengths must be"):
        model.score(torch.zeros(2, 5, dtype=torch.long), lengths)


def test_a_body_must_be_a_gpt():
    with pytest.raises(TypeError, match="must be a GPT"):
        ScalarModel(torch.nn.Linear(2, 2))


def test_a_reward_model_learns_a_preference_from_pairs(lm):
    """Pairs whose chosen response contains token 3 and whose rejected one does not: a
    few steps of the pairwise loss make the model rank held-out pairs correctly."""
    model = ScalarModel.from_language_model(lm)
    gen = torch.Generator().manual_seed(0)

    def pairs(n):
        base = torch.randint(0, 3, (n, 6), generator=gen)  # tokens 0..2
        chosen = base.clone()
        chosen[:, 4] = 3
        return chosen, base, torch.full((n,), 6)

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        chosen, rejected, lengths = pairs(32)
        loss = pairwise_loss(model.score(chosen, lengths), model.score(rejected, lengths))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    chosen, rejected, lengths = pairs(200)
    with torch.no_grad():
        accuracy = (model.score(chosen, lengths) > model.score(rejected, lengths)).float().mean()
    assert accuracy > 0.95


def test_reward_fn_scores_each_response_of_a_rollout_without_gradients(lm):
    model = ScalarModel.from_language_model(lm).train()
    gen = torch.Generator().manual_seed(0)
    rollout = sample_rollout(lm, [[1, 2], [3]], 3, 4, eos_id=6, pad_id=0, generator=gen)
    scores = reward_fn(model)(rollout)
    assert scores.shape == (6,) and not scores.requires_grad
    assert model.training  # its mode is restored
    with torch.no_grad():
        expected = model.eval().score(rollout.ids, rollout.lengths)  # no dropout
    torch.testing.assert_close(scores, expected)
    with pytest.raises(TypeError, match="ScalarModel"):
        reward_fn(lm)
