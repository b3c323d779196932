"""Policy optimisation: configs, per-token rewards, experience, accumulated updates, and
REINFORCE, PPO and GRPO actually raising a reward."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.alignment import (
    Experience,
    RLConfig,
    ScalarModel,
    collect_experience,
    evaluate_policy,
    gae,
    group_advantages,
    last_token_index,
    rl_step,
    sample_rollout,
    sequence_rewards,
    token_rewards,
    update_policy,
    whiten,
)

VOCAB, EOS, PAD, TARGET = 6, 5, 0, 3
PROMPTS = [[1, 2], [2, 4, 1], [4]]


def policy_pair(seed=0):
    policy = random_gpt(seed=seed, vocab_size=VOCAB, block_size=16, scale=2.0)
    return policy, copy.deepcopy(policy)


def count_target(rollout):
    """A verifiable reward: the fraction of response tokens equal to TARGET."""
    hits = (rollout.ids == TARGET) & rollout.response_mask
    return hits.sum(1) / rollout.response_mask.sum(1)


def test_configs_are_validated():
    with pytest.raises(ValueError, match="method"):
        RLConfig("a2c")
    with pytest.raises(ValueError, match="group_size"):
        RLConfig("grpo", group_size=1)
    with pytest.raises(ValueError, match="beta"):
        RLConfig("ppo", beta=-0.1)
    with pytest.raises(ValueError, match="baseline"):
        RLConfig("reinforce", baseline="median")
    assert RLConfig("reinforce", group_size=1).group_size == 1


def test_per_token_and_sequence_rewards_by_hand():
    kl = torch.tensor([[0.0, 0.5, 0.2, 9.0], [0.0, 1.0, 9.0, 9.0]])
    mask = torch.tensor([[False, True, True, False], [False, True, False, False]])
    scores = torch.tensor([2.0, -1.0])
    assert last_token_index(mask).tolist() == [2, 1]
    torch.testing.assert_close(
        token_rewards(scores, kl, mask, beta=0.1),
        torch.tensor([[0.0, -0.05, 2.0 - 0.02, 0.0], [0.0, -1.0 - 0.1, 0.0, 0.0]]),
    )
    torch.testing.assert_close(
        sequence_rewards(scores, kl, mask, beta=0.1), torch.tensor([2.0 - 0.07, -1.1])
    )


@pytest.fixture
def scored():
    policy, reference = policy_pair()
    with torch.no_grad():  # move the policy away from the reference: a nonzero KL
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    gen = torch.Generator().manual_seed(0)
    rollout = sample_rollout(policy, PROMPTS, 4, 6, EOS, PAD, generator=gen)
    return policy, reference, rollout, count_target(rollout).float()


def test_reinforce_advantages_are_penalised_rewards_minus_the_mean(scored):
    policy, reference, rollout, scores = scored
    config = RLConfig("reinforce", beta=0.2)
    exp = collect_experience(policy, reference, rollout, scores, config)
    kl = (exp.old_logprobs - exp.ref_logprobs).masked_fill(~exp.mask, 0)
    assert kl.abs().sum() > 0
    rewards = scores - 0.2 * kl.sum(1)
    torch.testing.assert_close(exp.advantages, rewards - rewards.mean())
    none = collect_experience(
        policy, reference, rollout, scores, RLConfig("reinforce", beta=0.2, baseline="none")
    )
    torch.testing.assert_close(none.advantages, rewards)
    white = RLConfig("reinforce", beta=0.2, baseline="whiten")
    white = collect_experience(policy, reference, rollout, scores, white)
    torch.testing.assert_close(white.advantages, whiten(rewards))


def test_grpo_advantages_are_group_normalised_scores(scored):
    policy, reference, rollout, scores = scored
    for scale in (True, False):
        config = RLConfig("grpo", scale_groups=scale)
        exp = collect_experience(policy, reference, rollout, scores, config)
        torch.testing.assert_close(exp.advantages, group_advantages(scores, 4, scale=scale))


def test_ppo_advantages_are_whitened_gae_over_the_value_model(scored):
    policy, reference, rollout, scores = scored
    value = ScalarModel.from_language_model(reference)
    config = RLConfig("ppo", beta=0.1, lam=0.9)
    exp = collect_experience(policy, reference, rollout, scores, config, value)
    with torch.no_grad():
        values = value(rollout.ids[:, :-1])
    kl = exp.old_logprobs - exp.ref_logprobs
    advantages, returns = gae(token_rewards(scores, kl, exp.mask, 0.1), values, exp.mask, 1.0, 0.9)
    torch.testing.assert_close(exp.advantages, whiten(advantages, exp.mask))
    torch.testing.assert_close(exp.returns, returns)
    with pytest.raises(ValueError, match="value_model"):
        collect_experience(policy, reference, rollout, scores, config)


@pytest.mark.parametrize(
    "method, reduction",
    [("reinforce", "sum"), ("reinforce", "token-mean"), ("grpo", "sequence-mean"),
     ("ppo", "token-mean"), ("ppo", "sequence-mean")],
)  # fmt: skip
def test_accumulating_microbatches_equals_one_large_batch(scored, method, reduction):
    """The update from 4 accumulated microbatches equals the one from the whole batch,
    although the responses differ in length (token means weigh them by their tokens)."""
    policy, reference, rollout, scores = scored
    value = ScalarModel.from_language_model(reference) if method == "ppo" else None

    def flat(*models):
        return torch.cat([p.detach().flatten() for m in models if m for p in m.parameters()])

    results = []
    for microbatches in (1, 4):
        config = RLConfig(method, reduction=reduction, microbatches=microbatches, grad_clip=None)
        exp = collect_experience(policy, reference, rollout, scores, config, value)
        model, critic = copy.deepcopy(policy), copy.deepcopy(value)
        params = list(model.parameters()) + (list(critic.parameters()) if critic else [])
        update_policy(model, exp, config, torch.optim.SGD(params, lr=1.0), critic)
        results.append(flat(model, critic))
    assert (results[0] - flat(policy, value)).abs().max() > 1e-3  # the update did something
    torch.testing.assert_close(results[0], results[1], atol=1e-5, rtol=1e-4)


def test_experience_splits_into_equal_consecutive_pieces(scored):
    policy, reference, rollout, scores = scored
    exp = collect_experience(policy, reference, rollout, scores, RLConfig("reinforce"))
    pieces = exp.split(3)
    assert [len(p) for p in pieces] == [4, 4, 4] and isinstance(pieces[0], Experience)
    torch.testing.assert_close(pieces[1].advantages, exp.advantages[4:8])
    with pytest.raises(ValueError, match="do not divide"):
        exp.split(5)


@pytest.mark.parametrize("method", ["reinforce", "ppo", "grpo"])
def test_each_method_raises_a_verifiable_reward(method):
    """Rewarding the fraction of TARGET tokens: 25 steps of any method raise it well above
    the initial policy's, on fresh samples of the same prompts."""
    policy, reference = policy_pair(seed=3)
    value = ScalarModel.from_language_model(reference) if method == "ppo" else None
    config = RLConfig(
        method,
        group_size=4,
        max_new_tokens=6,
        beta=0.01,
        epochs=2 if method == "ppo" else 1,
        minibatches=2 if method == "ppo" else 1,
    )
    params = list(policy.parameters()) + (list(value.parameters()) if value else [])
    optimizer = torch.optim.Adam(params, lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    before = evaluate_policy(
        policy,
        reference,
        PROMPTS,
        {"target": count_target},
        samples=50,
        max_new_tokens=6,
        eos_id=EOS,
        pad_id=PAD,
    )
    for _ in range(25):
        stats = rl_step(
            policy,
            reference,
            PROMPTS,
            count_target,
            config,
            optimizer,
            eos_id=EOS,
            pad_id=PAD,
            generator=gen,
            value_model=value,
        )
    assert set(stats) == {"score", "kl", "length", "finished", "loss"}
    after = evaluate_policy(
        policy,
        reference,
        PROMPTS,
        {"target": count_target},
        samples=50,
        max_new_tokens=6,
        eos_id=EOS,
        pad_id=PAD,
    )
    assert after["target"] > before["target"] + 0.2
    assert after["kl"] > 0.1 and before["kl"] == 0.0


def test_updates_run_without_dropout_and_restore_the_mode():
    """A policy with dropout gives the same update in train and eval mode (the update
    switches dropout off, so the first ratio to the sampler is exactly 1), and comes
    back in the mode it was in."""
    policy = random_gpt(seed=0, vocab_size=VOCAB, block_size=16, scale=2.0, dropout=0.5)
    reference = copy.deepcopy(policy)
    rollout = sample_rollout(policy, PROMPTS, 2, 5, EOS, PAD, generator=torch.Generator())
    config = RLConfig("grpo", group_size=2, grad_clip=None)
    exp = collect_experience(policy, reference, rollout, count_target(rollout).float(), config)
    updated = []
    for mode in (True, False):
        model = copy.deepcopy(policy).train(mode)
        update_policy(model, exp, config, torch.optim.SGD(model.parameters(), lr=1.0))
        assert model.training is mode
        updated.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(updated[0], updated[1])
