"""The pieces of RLHF: log-probabilities and masks, Bradley-Terry preferences, advantages
(baselines, groups, GAE against a direct recursion), and the policy losses (REINFORCE,
PPO at its clipping boundaries, KL estimators, DPO against values by hand)."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import Bigram

from llmcourse.alignment import (
    dpo_loss,
    gae,
    group_advantages,
    kl_estimate,
    masked_mean,
    masked_sum,
    noise_ceiling,
    pairwise_loss,
    policy_gradient_loss,
    ppo_clipped_loss,
    preference_probability,
    reduce_tokens,
    response_logprobs,
    sample_preferences,
    sequence_logprob,
    token_entropy,
    value_loss,
    whiten,
)

# ------------------------------------------------------------------ log-probabilities


def test_response_logprobs_are_the_chain_rule_over_response_tokens():
    probs = [[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.25, 0.25, 0.5]]
    model = Bigram(probs)
    ids = torch.tensor([[0, 1, 2, 0], [2, 2, 0, 0]])
    response = torch.tensor([[False, False, True, True], [False, True, True, False]])
    logprobs, mask = response_logprobs(model, ids, response)
    assert logprobs.shape == mask.shape == (2, 3)
    expected = torch.tensor(
        [[math.log(0.3), math.log(0.3), math.log(0.25)],
         [math.log(0.5), math.log(0.25), math.log(0.5)]], dtype=torch.float32,
    )  # fmt: skip
    torch.testing.assert_close(logprobs, expected)
    # log p(response | prompt): row 0 predicts tokens 2 and 0, row 1 tokens 2 and 0
    torch.testing.assert_close(
        sequence_logprob(logprobs, mask),
        torch.tensor([math.log(0.3 * 0.25), math.log(0.5 * 0.25)]),
    )


def test_masked_reductions_and_entropy():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[True, False, True], [False, False, True]])
    assert masked_sum(values, mask).item() == 10.0
    assert masked_mean(values, mask).item() == pytest.approx(10 / 3)
    torch.testing.assert_close(masked_mean(values, mask, dim=1), torch.tensor([2.0, 6.0]))
    with pytest.raises(ValueError, match="selects no entry"):
        masked_mean(values, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="bool tensor of shape"):
        masked_mean(values, mask.float())
    uniform = torch.zeros(2, 5, 8)
    torch.testing.assert_close(token_entropy(uniform), torch.full((2, 5), math.log(8)))
    certain = torch.tensor([[0.0, -1e4]])
    assert token_entropy(certain).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("reduction", ["token-mean", "sequence-mean", "sum"])
def test_reductions_weigh_tokens_and_sequences(reduction):
    values = torch.tensor([[1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, True], [True, False, False, False]])
    expected = {"token-mean": 7 / 5, "sequence-mean": (1 + 3) / 2, "sum": (4 + 3) / 2}
    assert reduce_tokens(values, mask, reduction).item() == pytest.approx(expected[reduction])


# ------------------------------------------------------------------------ preferences


def test_bradley_terry_and_the_pairwise_loss():
    a, b = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    torch.testing.assert_close(
        preference_probability(a, b),
        torch.tensor([1 / (1 + math.exp(-2)), 0.5, 1 / (1 + math.exp(2))]),
    )
    # -log sigmoid(r_w - r_l), the seed's loss, by hand
    expected = (math.log(1 + math.exp(-2)) + math.log(2) + math.log(1 + math.exp(2))) / 3
    assert pairwise_loss(a, b).item() == pytest.approx(expected)
    assert pairwise_loss(a + 5, b + 5).item() == pytest.approx(expected)  # shift-invariant
    with pytest.raises(ValueError, match="one shape"):
        pairwise_loss(a, b[:2])
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        preference_probability(a, b, scale=0.0)


def test_simulated_annotators_follow_bradley_terry_and_the_ceiling_bounds_accuracy():
    gold_a = torch.linspace(-2, 2, 20_000)
    gold_b = torch.zeros(20_000)
    labels = sample_preferences(
        gold_a, gold_b, scale=0.5, generator=torch.Generator().manual_seed(0)
    )
    p = preference_probability(gold_a, gold_b, scale=0.5)
    assert abs(labels.float().mean() - p.mean()) < 4 * (p * (1 - p)).sum().sqrt() / 20_000
    oracle = (p > 0.5) == labels  # the best predictor's accuracy
    ceiling = noise_ceiling(gold_a, gold_b, scale=0.5)
    assert abs(oracle.float().mean() - ceiling) < 0.02
    assert 0.5 < ceiling < 1


# ------------------------------------------------------------------------- advantages


def test_whiten_and_group_advantages():
    x = torch.tensor([1.0, 2.0, 3.0, 10.0])
    w = whiten(x)
    assert w.mean().abs() < 1e-6 and w.std(unbiased=False) == pytest.approx(1.0, abs=1e-6)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 5.0, 5.0])
    centred = group_advantages(rewards, 2, scale=False)
    torch.testing.assert_close(centred, torch.tensor([0.5, -0.5, -0.5, 0.5, 0.0, 0.0]))
    scaled = group_advantages(rewards, 2)
    std = torch.tensor([1.0, 0.0]).std()  # the unbiased std of a group {1, 0}
    torch.testing.assert_close(scaled[:2], torch.tensor([0.5, -0.5]) / (std + 1e-6))
    assert (scaled[4:] == 0).all()  # equal rewards: no signal
    with pytest.raises(ValueError, match="must divide the batch"):
        group_advantages(rewards, 4)
    with pytest.raises(ValueError, match="group_size must be an integer >= 2"):
        group_advantages(rewards, 1)


def gae_by_recursion(rewards, values, gamma, lam):
    """A_t = sum_k (gamma lam)^k delta_{t+k} over one response, written out."""
    n = len(rewards)
    deltas = [rewards[t] + gamma * (values[t + 1] if t + 1 < n else 0.0) - values[t]
              for t in range(n)]  # fmt: skip
    return [sum((gamma * lam) ** k * deltas[t + k] for k in range(n - t)) for t in range(n)]


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.0), (0.99, 1.0)])
def test_gae_equals_the_direct_sum(gamma, lam):
    g = torch.Generator().manual_seed(3)
    rewards, values = (
        torch.randn(3, 7, generator=g, dtype=torch.float64),
        torch.randn(3, 7, generator=g, dtype=torch.float64),
    )
    starts, ends = [1, 0, 3], [5, 7, 4]  # a response = one contiguous run per row
    mask = torch.zeros(3, 7, dtype=torch.bool)
    for row, (s, e) in enumerate(zip(starts, ends, strict=True)):
        mask[row, s:e] = True
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    for row, (s, e) in enumerate(zip(starts, ends, strict=True)):
        expected = gae_by_recursion(
            rewards[row, s:e].tolist(), values[row, s:e].tolist(), gamma, lam
        )
        torch.testing.assert_close(
            advantages[row, s:e], torch.tensor(expected, dtype=torch.float64)
        )
    assert (advantages[~mask] == 0).all() and (returns[~mask] == 0).all()
    torch.testing.assert_close(returns[mask], (advantages + values)[mask])
    with pytest.raises(ValueError, match="gamma must be in"):
        gae(rewards, values, mask, gamma=1.5)


# ------------------------------------------------------------------------ the losses


def test_policy_gradient_is_reinforce():
    logits = torch.zeros(1, 3, requires_grad=True)
    logprobs = logits.log_softmax(-1)[:, :1]  # one token (id 0) of probability 1/3
    loss = policy_gradient_loss(logprobs, torch.tensor([2.0]), torch.ones(1, 1, dtype=torch.bool))
    loss.backward()
    # d(-A log p_0)/d logits = -A (onehot(0) - p)
    torch.testing.assert_close(logits.grad, -2.0 * torch.tensor([[2 / 3, -1 / 3, -1 / 3]]))


@pytest.mark.parametrize(
    ("ratio", "advantage", "expected_value", "expected_grad", "clipped"),
    [
        (1.0, 1.0, -1.0, -1.0, 0.0),  # inside the interval: the plain ratio objective
        (1.1, 1.0, -1.1, -1.1, 0.0),
        (1.3, 1.0, -1.2, 0.0, 1.0),  # above 1 + eps with A > 0: clipped, no gradient
        (1.3, -1.0, 1.3, 1.3, 0.0),  # above with A < 0: min keeps the unclipped term
        (0.7, -1.0, 0.8, 0.0, 1.0),  # below 1 - eps with A < 0: clipped
        (0.7, 1.0, -0.7, -0.7, 0.0),  # below with A > 0: unclipped
    ],
)
def test_ppo_clipped_loss_at_the_boundaries(
    ratio, advantage, expected_value, expected_grad, clipped
):
    old = torch.tensor([[math.log(0.5)]])
    new = (old + math.log(ratio)).clone().requires_grad_()
    loss, fraction = ppo_clipped_loss(
        new, old, torch.tensor([advantage]), torch.ones(1, 1, dtype=torch.bool), clip=0.2
    )
    assert loss.item() == pytest.approx(expected_value, rel=1e-6)
    loss.backward()
    # d loss / d log p = -A rho where the unclipped term is active, else 0
    assert new.grad.item() == pytest.approx(expected_grad, rel=1e-6, abs=1e-9)
    assert fraction.item() == clipped


def test_kl_estimators():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(50, generator=g, dtype=torch.float64), 0)
    q = torch.softmax(torch.randn(50, generator=g, dtype=torch.float64), 0)
    exact = (p * (p / q).log()).sum()
    samples = torch.multinomial(p, 200_000, replacement=True, generator=g)
    logp, logq = p.log()[samples], q.log()[samples]
    k1, k3 = kl_estimate(logp, logq, "k1"), kl_estimate(logp, logq, "k3")
    assert k1.mean() == pytest.approx(exact.item(), abs=0.02)  # unbiased
    assert k3.mean() == pytest.approx(exact.item(), abs=0.02)  # unbiased
    assert (k3 >= 0).all() and (k1 < 0).any()  # k3 never negative, k1 sometimes
    assert k3.var() < k1.var()
    torch.testing.assert_close(kl_estimate(logp, logq, "k2"), 0.5 * (logq - logp) ** 2)
    with pytest.raises(ValueError, match="kind must be one of"):
        kl_estimate(logp, logq, "k4")


def test_dpo_loss_by_hand_from_the_paper():
    chosen, rejected = torch.tensor([-10.0, -3.0]), torch.tensor([-12.0, -2.0])
    ref_chosen, ref_rejected = torch.tensor([-11.0, -3.5]), torch.tensor([-11.0, -2.5])
    loss, r_c, r_r = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.5)
    # implicit rewards beta * (log p - log p_ref)
    torch.testing.assert_close(r_c, torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(r_r, torch.tensor([-0.5, 0.25]))
    expected = (math.log(1 + math.exp(-1.0)) + math.log(2)) / 2  # -log sigmoid of the margins
    assert loss.item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.0)
    with pytest.raises(ValueError, match="one shape"):
        dpo_loss(chosen, rejected[:1], ref_chosen, ref_rejected)


def test_value_loss():
    values = torch.tensor([[1.0, 2.0]], requires_grad=True)
    loss = value_loss(values, torch.tensor([[0.0, 2.0]]), torch.tensor([[True, True]]))
    assert loss.item() == pytest.approx(0.25)
