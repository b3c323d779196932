"""Preference pairs from rollouts; the reward model's loss and DPO's loss on them."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from tiny_models import random_gpt

from llmcourse.alignment import (
    PreferencePairs,
    ScalarModel,
    dpo_pair_loss,
    pair_logprobs,
    pair_rewards,
    pairs_from_rollout,
    reward_model_loss,
    sample_rollout,
    sequence_lengths,
)

VOCAB, EOS, PAD = 6, 5, 0


@pytest.fixture
def setup():
    policy = random_gpt(seed=0, vocab_size=VOCAB, block_size=16, scale=2.0)
    gen = torch.Generator().manual_seed(0)
    rollout = sample_rollout(policy, [[1, 2], [3], [4, 4, 1]], 2, 5, EOS, PAD, generator=gen)
    return policy, rollout


def test_pairs_take_the_preferred_row_of_each_prompt(setup):
    _, rollout = setup
    pairs = pairs_from_rollout(rollout, torch.tensor([True, False, True]))
    assert len(pairs) == 3
    for i, (chosen, rejected) in enumerate([(0, 1), (3, 2), (4, 5)]):
        assert torch.equal(pairs.chosen[i], rollout.ids[chosen])
        assert torch.equal(pairs.rejected_mask[i], rollout.response_mask[rejected])
    with pytest.raises(ValueError, match="two responses per prompt"):
        pairs_from_rollout(sample_rollout(setup[0], [[1]], 3, 2, EOS, PAD), torch.tensor([True]))
    with pytest.raises(ValueError, match="first_preferred"):
        pairs_from_rollout(rollout, torch.tensor([1, 0, 1]))


def test_pairs_must_have_masks_of_their_ids_shape():
    ids = torch.zeros(2, 4, dtype=torch.long)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="rejected_mask"):
        PreferencePairs(ids, mask, ids, mask[:, :3])
    with pytest.raises(ValueError, match="2 chosen but 1 rejected"):
        PreferencePairs(ids, mask, ids[:1], mask[:1])


def test_reward_model_loss_is_the_pairwise_loss_at_the_last_tokens(setup):
    policy, rollout = setup
    pairs = pairs_from_rollout(rollout, torch.tensor([True, True, False]))
    model = ScalarModel.from_language_model(policy)
    loss, accuracy = reward_model_loss(model, pairs)
    with torch.no_grad():
        full_c, full_r = model(pairs.chosen), model(pairs.rejected)
    rows = torch.arange(3)
    c = full_c[rows, sequence_lengths(pairs.chosen_mask) - 1]
    r = full_r[rows, sequence_lengths(pairs.rejected_mask) - 1]
    assert loss.item() == pytest.approx(-F.logsigmoid(c - r).mean().item(), rel=1e-5)
    assert accuracy.item() == pytest.approx((c > r).float().mean().item())
    chosen, rejected = pair_rewards(model, pairs)  # the scores the loss compares
    torch.testing.assert_close(chosen.detach(), c)
    torch.testing.assert_close(rejected.detach(), r)


def test_dpo_starts_at_log_2_and_learns_the_preferences(setup):
    """At the reference the loss is log 2 and the margin 0; steps on the pairs raise the
    policy's relative log-probability of the chosen responses."""
    policy, rollout = setup
    reference = copy.deepcopy(policy)
    pairs = pairs_from_rollout(rollout, torch.tensor([True, False, True]))
    with torch.no_grad():
        ref = pair_logprobs(reference, pairs)
    loss, margin = dpo_pair_loss(policy, ref, pairs, beta=0.5)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6) and margin.item() == 0.0
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for _ in range(20):
        loss, margin = dpo_pair_loss(policy, ref, pairs, beta=0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    chosen, rejected = pair_logprobs(policy, pairs)
    assert ((chosen - ref[0]) - (rejected - ref[1]) > 0).all()
    assert loss.item() < 0.3 and margin.item() > 1.0
