"""Rollouts: groups of sampled responses per prompt, packed with masks and padding."""

from __future__ import annotations

import pytest
import torch
from tiny_models import Bigram, chi_square_p_value, random_gpt

from llmcourse.alignment import Rollout, sample_rollout, sequence_lengths
from llmcourse.generation import sample

EOS, PAD = 3, 0
# A bigram model over 4 tokens: from any token, 3 (the end) has probability 0.4.
PROBS = [[0.2, 0.2, 0.2, 0.4], [0.1, 0.3, 0.2, 0.4], [0.3, 0.2, 0.1, 0.4], [0.2, 0.2, 0.2, 0.4]]


def rollout(seed=0, group_size=3, max_new_tokens=5, prompts=((1, 2), (2,), (1, 1, 1))):
    gen = torch.Generator().manual_seed(seed)
    return sample_rollout(
        Bigram(PROBS),
        [list(p) for p in prompts],
        group_size,
        max_new_tokens,
        EOS,
        PAD,
        generator=gen,
    )


def test_rows_hold_the_prompt_then_the_response_then_padding():
    r = rollout()
    prompts = [(1, 2), (2,), (1, 1, 1)]
    assert r.ids.shape[0] == 9 and r.response_mask.shape == r.ids.shape
    assert r.prompt_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for row, mask, index, done, response in zip(
        r.ids, r.response_mask, r.prompt_index, r.finished, r.responses(), strict=True
    ):
        prompt = prompts[index]
        assert row[: len(prompt)].tolist() == list(prompt) and not mask[: len(prompt)].any()
        n = len(response)
        assert 1 <= n <= 5 and mask[len(prompt) : len(prompt) + n].all()
        assert not mask[len(prompt) + n :].any() and (row[len(prompt) + n :] == PAD).all()
        assert bool(done) == (response[-1] == EOS)  # a finished response ends at EOS ...
        assert EOS not in response[:-1]  # ... and only there
        if not done:
            assert n == 5  # an unfinished one ran out of tokens
    torch.testing.assert_close(r.lengths, sequence_lengths(r.response_mask))
    expected = torch.tensor([2, 2, 2, 1, 1, 1, 3, 3, 3]) + r.response_lengths
    torch.testing.assert_close(r.lengths, expected)


def test_a_rollout_is_the_samplers_draws_and_reproducible():
    r = rollout(seed=4, prompts=((1, 2),))
    again = rollout(seed=4, prompts=((1, 2),))
    assert torch.equal(r.ids, again.ids)
    out = sample(
        Bigram(PROBS),
        torch.tensor([[1, 2]] * 3),
        5,
        generator=torch.Generator().manual_seed(4),
        eos_id=EOS,
    )
    for response, drawn in zip(r.responses(), out[:, 2:].tolist(), strict=True):
        assert response == drawn[: len(response)]


def test_first_response_tokens_follow_the_policy():
    r = rollout(seed=1, group_size=4000, max_new_tokens=1, prompts=((2,),))
    counts = torch.bincount(r.ids[:, 1], minlength=4)
    assert chi_square_p_value(counts, torch.tensor(PROBS[2])) > 1e-3
    assert chi_square_p_value(counts, torch.tensor(PROBS[0])) < 1e-6


def test_a_transformer_policy_works_with_its_cache():
    model = random_gpt(seed=0, vocab_size=6, block_size=16, scale=3.0)
    gen = torch.Generator().manual_seed(0)
    r = sample_rollout(model, [[1, 2, 3], [4]], 2, 6, eos_id=5, pad_id=0, generator=gen)
    assert isinstance(r, Rollout) and r.ids.shape[0] == 4 and r.ids.shape[1] <= 9


@pytest.mark.parametrize(
    "prompts, group_size, message",
    [([], 2, "prompts"), ([[1], []], 2, "prompts"), ("ab", 2, "prompts"), ([[1]], 0, "group_size")],
)
def test_bad_arguments_are_rejected(prompts, group_size, message):
    with pytest.raises(ValueError, match=message):
        sample_rollout(Bigram(PROBS), prompts, group_size, 3, EOS, PAD)
