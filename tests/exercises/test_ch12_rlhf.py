"""Grading tests for the Chapter 12 exercises (solutions/ch12_rlhf.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``; an answer's
points add up to those announced in the notebook's heading. Inputs are random tensors of
random sizes drawn from the ``fresh_seed``; the expected values come from
``llmcourse.alignment`` (its losses are tested against hand computations and against
each other in tests/test_alignment.py and tests/test_preference_pairs.py) or
from values worked out by hand in the test.
"""

from __future__ import annotations

import math

import pytest
import torch

from llmcourse.alignment import (
    dpo_loss,
    gather_logprobs,
    pairwise_loss,
    policy_gradient_loss,
    ppo_clipped_loss,
    sequence_logprob,
)
from llmcourse.grading.expect import expect_tensor

NOTEBOOK = "ch12_rlhf"

# What each answer must write itself, besides the package's functions named like the
# answers (see llmcourse.grading.offlimits): the package's versions of the same loss.
ALIGNMENT = "llmcourse.alignment"
OFF_LIMITS = {
    "reward_model_loss": [f"{ALIGNMENT}.preferences.pairwise_loss"],
    "sequence_logprob": [
        f"{ALIGNMENT}.logprobs.gather_logprobs",
        f"{ALIGNMENT}.logprobs.response_logprobs",
        f"{ALIGNMENT}.logprobs.masked_sum",
    ],
    "reinforce_loss": [
        f"{ALIGNMENT}.losses.policy_gradient_loss",
        f"{ALIGNMENT}.losses.reduce_tokens",
    ],
    "ppo_loss": [f"{ALIGNMENT}.losses.ppo_clipped_loss", f"{ALIGNMENT}.losses.reduce_tokens"],
    "dpo_loss": [f"{ALIGNMENT}.losses.dpo_loss", f"{ALIGNMENT}.pairs.dpo_pair_loss"],
}
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def size(g: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=g))


def response_mask(batch: int, time: int, g: torch.Generator) -> torch.Tensor:
    """``(batch, time)`` bool: in each row a prompt, then at least one response token,
    then padding."""
    mask = torch.zeros(batch, time, dtype=torch.bool)
    for row in range(batch):
        start = size(g, 0, time - 1)
        end = size(g, start + 1, time)
        mask[row, start:end] = True
    return mask


# ------------------------------------------------------------------ reward model loss
@pytest.mark.exercise(
    "reward_model_loss",
    points=1,
    hint="Equal rewards give log 2 per pair; the mean is over the pairs.",
)
def test_reward_model_loss_by_hand(student):
    chosen, rejected = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0])
    expected = (math.log(2) + math.log(1 + math.exp(-1))) / 2
    got = student.call("reward_model_loss", chosen, rejected)
    expect_tensor(got, torch.tensor(expected), what="the loss of rewards (0, 0) and (1, 0)")


@pytest.mark.exercise(
    "reward_model_loss",
    points=2,
    hint="Use F.logsigmoid(chosen - rejected): log(torch.sigmoid(x)) is -inf once sigmoid "
    "underflows (x below about -100 in float32).",
)
def test_reward_model_loss_matches_reference_and_stays_finite(student, fresh_seed):
    g = generator(fresh_seed)
    n = size(g, 1, 64)
    chosen = torch.randn(n, generator=g) * 3
    rejected = torch.randn(n, generator=g) * 3
    rejected[0] = chosen[0] + 200  # a confident mistake: the loss is about 200, not inf
    got = student.call("reward_model_loss", chosen, rejected)
    expect_tensor(
        got, pairwise_loss(chosen, rejected), **TOLERANCE, what=f"the loss (seed {fresh_seed})"
    )


# ---------------------------------------------------------------- sequence log-prob
@pytest.mark.exercise(
    "sequence_logprob",
    points=1,
    hint="A uniform distribution over V tokens gives log(1/V) per token; sum only where the "
    "mask is True.",
)
def test_sequence_logprob_of_uniform_logits(student):
    logits = torch.zeros(2, 3, 4)
    targets = torch.tensor([[0, 1, 2], [3, 3, 3]])
    mask = torch.tensor([[False, True, True], [True, False, False]])
    got = student.call("sequence_logprob", logits, targets, mask)
    expect_tensor(got, torch.tensor([2 * math.log(0.25), math.log(0.25)]), what="the sums")


@pytest.mark.exercise(
    "sequence_logprob",
    points=2,
    hint="logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1), then zero the "
    "positions outside the mask (masked_fill) and sum over time: one number per row.",
)
def test_sequence_logprob_matches_reference(student, fresh_seed):
    g = generator(fresh_seed)
    batch, time, vocab = size(g, 1, 6), size(g, 1, 12), size(g, 2, 50)
    logits = torch.randn(batch, time, vocab, generator=g) * 4
    targets = torch.randint(0, vocab, (batch, time), generator=g)
    mask = torch.rand(batch, time, generator=g) < 0.6
    got = student.call("sequence_logprob", logits, targets, mask)
    expected = sequence_logprob(gather_logprobs(logits, targets), mask)
    what = f"the log-probabilities ({batch}, {time}, vocab {vocab}; seed {fresh_seed})"
    expect_tensor(got, expected, **TOLERANCE, what=what)


# ---------------------------------------------------------------------- REINFORCE
@pytest.mark.exercise(
    "reinforce_loss",
    points=2,
    hint="advantages = rewards - rewards.mean(); each response's log-probability is its "
    "masked sum over time; the loss is minus the mean over responses of their product.",
)
def test_reinforce_loss_matches_reference(student, fresh_seed):
    g = generator(fresh_seed)
    batch, time = size(g, 1, 8), size(g, 1, 10)
    logprobs = -torch.rand(batch, time, generator=g) * 5
    rewards = torch.randn(batch, generator=g)
    mask = response_mask(batch, time, g)
    got = student.call("reinforce_loss", logprobs, rewards, mask)
    expected = policy_gradient_loss(logprobs, rewards - rewards.mean(), mask, "sum")
    expect_tensor(got, expected, **TOLERANCE, what=f"the loss (seed {fresh_seed})")


# ----------------------------------------------------------------------------- PPO
@pytest.mark.exercise(
    "ppo_loss",
    points=1,
    hint="With equal log-probabilities every ratio is 1: the loss is minus the mean "
    "advantage over the response tokens (a response with more tokens counts more).",
)
def test_ppo_loss_at_ratio_one(student):
    logprobs = torch.full((2, 3), -1.0)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    got = student.call("ppo_loss", logprobs, logprobs.clone(), torch.tensor([1.0, -2.0]), mask, 0.2)
    expect_tensor(got, torch.tensor(-(3 * 1.0 - 2.0) / 4), what="the loss at ratio 1")


@pytest.mark.exercise(
    "ppo_loss",
    points=2,
    hint="ratio = exp(logprobs - old_logprobs); per token min(ratio * A, clamp(ratio, 1 - "
    "clip, 1 + clip) * A) with A broadcast over the response's tokens; minus its mean over "
    "the mask.",
)
def test_ppo_loss_matches_reference(student, fresh_seed):
    g = generator(fresh_seed)
    batch, time = size(g, 1, 8), size(g, 1, 10)
    old = -torch.rand(batch, time, generator=g) * 4
    new = old + torch.randn(batch, time, generator=g) * 0.5  # ratios inside and outside
    advantages = torch.randn(batch, generator=g)
    mask = response_mask(batch, time, g)
    clip = float(torch.empty(1).uniform_(0.05, 0.5, generator=g))
    got = student.call("ppo_loss", new, old, advantages, mask, clip)
    expected, _ = ppo_clipped_loss(new, old, advantages, mask, clip)
    expect_tensor(got, expected, **TOLERANCE, what=f"the loss (clip {clip:.3f}, seed {fresh_seed})")


# ----------------------------------------------------------------------------- DPO
@pytest.mark.exercise(
    "dpo_loss",
    points=2,
    hint="margin = (chosen - ref_chosen) - (rejected - ref_rejected); the loss is "
    "-F.logsigmoid(beta * margin).mean() (stable for large margins).",
)
def test_dpo_loss_matches_reference(student, fresh_seed):
    g = generator(fresh_seed)
    n = size(g, 1, 32)
    chosen, rejected, ref_chosen, ref_rejected = (
        -torch.rand(n, generator=g) * 60 for _ in range(4)
    )
    beta = float(torch.empty(1).uniform_(0.01, 5.0, generator=g))
    got = student.call("dpo_loss", chosen, rejected, ref_chosen, ref_rejected, beta)
    expected, _, _ = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta)
    expect_tensor(got, expected, **TOLERANCE, what=f"the loss (beta {beta:.3f}, seed {fresh_seed})")
