"""One step of policy optimisation: act, score, compute advantages, update.

Every method of Chapter 12 that learns from a reward runs the same loop:

1. **Rollout** (:func:`~llmcourse.alignment.rollout.sample_rollout`): sample
   ``group_size`` responses to each of a batch of prompts from the current policy.
2. **Score**: a reward for each response: a reward model's (a *proxy* of what people
   want) or a verifiable one (is the answer right?).
3. **Experience** (:func:`collect_experience`): the log-probabilities of the sampled
   tokens under the policy that sampled them and under the frozen reference (the SFT
   model), their difference (the per-token KL estimate ``k1``), and the advantages:

   - ``"reinforce"``: the sequence reward ``R = score - beta * KL(sequence)`` (the
     penalised reward of Ziegler et al., 2019), minus a baseline: the batch mean
     (``baseline="mean"``), also divided by the standard deviation (``"whiten"``), or
     none;
   - ``"grpo"``: the score against the other responses to the same prompt
     (:func:`~llmcourse.alignment.advantages.group_advantages`); the KL is a loss term
     (the ``k3`` estimator) rather than part of the reward (Shao et al., 2024);
   - ``"ppo"``: per-token rewards (``-beta * k1`` at every token, plus the score at the
     last one), a value model's estimates and generalised advantage estimation
     (:func:`~llmcourse.alignment.advantages.gae`), whitened over the batch.

4. **Update** (:func:`update_policy`): ``epochs`` passes over the experience in
   ``minibatches``, each an optimizer step on the policy-gradient loss (PPO and GRPO:
   the clipped surrogate, with the ratio to the sampling policy; with one epoch and
   one minibatch the ratio is 1 and it is the plain policy gradient) and, for PPO, the
   value model's loss. Each minibatch may be split into ``microbatches`` whose gradients
   are accumulated, weighted so that the update equals the whole minibatch's.

:func:`rl_step` runs 1 to 4; :func:`evaluate_policy` measures a policy's rewards and
its KL to the reference on fixed prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from llmcourse.alignment.advantages import gae, group_advantages, whiten
from llmcourse.alignment.logprobs import gather_logprobs, response_logprobs
from llmcourse.alignment.losses import (
    kl_estimate,
    policy_gradient_loss,
    ppo_clipped_loss,
    reduce_tokens,
    value_loss,
)
from llmcourse.alignment.reward_model import ScalarModel
from llmcourse.alignment.rollout import Rollout, sample_rollout
from llmcourse.checks import check_choice, check_int, check_non_negative, check_positive
from llmcourse.generation.generate import eval_no_grad
from llmcourse.training.step import accumulate_gradients, optimizer_step

METHODS = ("reinforce", "ppo", "grpo")
BASELINES = ("none", "mean", "whiten")

RewardFn = Callable[[Rollout], Tensor]
"""``reward_fn(rollout) -> (batch,)`` float: one score per response."""


@dataclass(frozen=True)
class RLConfig:
    """What one step of :func:`rl_step` does.

    Attributes:
        method: ``"reinforce"``, ``"ppo"`` or ``"grpo"``.
        group_size: responses sampled per prompt (>= 2 for GRPO).
        max_new_tokens: the longest response.
        beta: the KL coefficient, >= 0.
        baseline: REINFORCE's baseline, ``"none"``, ``"mean"`` or ``"whiten"``.
        scale_groups: GRPO divides by each group's standard deviation.
        reduction: how per-token losses become one number
            (:func:`~llmcourse.alignment.losses.reduce_tokens`); REINFORCE's textbook
            form is ``"sum"`` (the sequence log-probability).
        epochs: passes over each rollout (PPO, GRPO).
        minibatches: optimizer steps per pass; must divide the batch.
        microbatches: gradient-accumulation pieces per minibatch; must divide it.
        clip: PPO's and GRPO's ``epsilon``.
        gamma, lam: GAE's discount and ``lambda`` (PPO).
        value_coef: the weight of the value loss (PPO).
        temperature: sampling temperature of the rollouts.
        grad_clip: the gradient-norm clip of each optimizer step (None: none).
    """

    method: str
    group_size: int = 4
    max_new_tokens: int = 24
    beta: float = 0.05
    baseline: str = "mean"
    scale_groups: bool = True
    reduction: str = "token-mean"
    epochs: int = 1
    minibatches: int = 1
    microbatches: int = 1
    clip: float = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    value_coef: float = 0.5
    temperature: float = 1.0
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("baseline", self.baseline, BASELINES)
        check_int("group_size", self.group_size, minimum=2 if self.method == "grpo" else 1)
        for name in ("max_new_tokens", "epochs", "minibatches", "microbatches"):
            check_int(name, getattr(self, name))
        check_non_negative("beta", self.beta)
        check_positive("clip", self.clip)
        check_positive("temperature", self.temperature)
        check_non_negative("value_coef", self.value_coef)


@dataclass(frozen=True)
class Experience:
    """Everything an update needs from one rollout; tensors of ``batch`` rows, per-token
    ones ``(batch, time - 1)`` aligned with ``logprobs[:, t]`` predicting token ``t + 1``.

    Attributes:
        ids: ``(batch, time)`` the rollout's tokens.
        mask: response tokens (the rollout's response mask, shifted).
        old_logprobs: the sampling policy's log-probabilities.
        ref_logprobs: the reference's.
        advantages: ``(batch,)`` per response (REINFORCE, GRPO) or per token (PPO).
        returns: the value model's targets (PPO; zeros otherwise).
    """

    ids: Tensor
    mask: Tensor
    old_logprobs: Tensor
    ref_logprobs: Tensor
    advantages: Tensor
    returns: Tensor

    def __len__(self) -> int:
        return self.ids.shape[0]

    def select(self, rows: Tensor) -> Experience:
        """The experience of some rows."""
        return Experience(*(getattr(self, f.name)[rows] for f in fields(self)))

    def split(self, parts: int) -> list[Experience]:
        """``parts`` consecutive pieces of equal size (``parts`` must divide the batch)."""
        if len(self) % parts:
            raise ValueError(f"{parts} pieces do not divide a batch of {len(self)}")
        return [self.select(rows) for rows in torch.arange(len(self)).chunk(parts)]


def last_token_index(mask: Tensor) -> Tensor:
    """``(batch,)``: the position of each row's last True entry (rows need one)."""
    return mask.long().cumsum(1).argmax(1)


def sequence_rewards(scores: Tensor, kl: Tensor, mask: Tensor, beta: float) -> Tensor:
    """``score - beta * sum_t kl_t`` per response: ``(batch,)`` from per-token ``kl``."""
    return scores - beta * kl.masked_fill(~mask, 0.0).sum(1)


def token_rewards(scores: Tensor, kl: Tensor, mask: Tensor, beta: float) -> Tensor:
    """PPO's per-token rewards: ``-beta * kl_t`` at every response token, plus the score
    at the last one; ``(batch, time)``."""
    rewards = (-beta * kl).masked_fill(~mask, 0.0)
    rows = torch.arange(len(scores))
    rewards[rows, last_token_index(mask)] += scores
    return rewards


def collect_experience(
    policy: nn.Module,
    reference: nn.Module,
    rollout: Rollout,
    scores: Tensor,
    config: RLConfig,
    value_model: ScalarModel | None = None,
) -> Experience:
    """Log-probabilities, KL and advantages of a scored rollout (step 3 above)."""
    if scores.shape != (len(rollout.ids),):
        raise ValueError(f"scores must be ({len(rollout.ids)},), got {tuple(scores.shape)}")
    if (config.method == "ppo") != (value_model is not None):
        raise ValueError("PPO needs a value_model, and only PPO uses one")
    with eval_no_grad(policy, reference):
        old, mask = response_logprobs(policy, rollout.ids, rollout.response_mask)
        ref, _ = response_logprobs(reference, rollout.ids, rollout.response_mask)
    kl = (old - ref).masked_fill(~mask, 0.0)
    returns = torch.zeros_like(old)
    if config.method == "grpo":
        advantages = group_advantages(scores, config.group_size, scale=config.scale_groups)
    elif config.method == "reinforce":
        rewards = sequence_rewards(scores, kl, mask, config.beta)
        if config.baseline == "whiten":
            advantages = whiten(rewards)
        else:
            advantages = rewards - (rewards.mean() if config.baseline == "mean" else 0.0)
    else:
        with eval_no_grad(value_model):
            values = value_model(rollout.ids[:, :-1]).float()
        advantages, returns = gae(
            token_rewards(scores, kl, mask, config.beta), values, mask, config.gamma, config.lam
        )
        advantages = whiten(advantages, mask)
    return Experience(rollout.ids, mask, old, ref, advantages, returns)


def _loss(models: nn.ModuleDict, batch: Experience, config: RLConfig) -> Tensor:
    """The loss of one (micro)batch: the policy-gradient surrogate, plus GRPO's KL term or
    PPO's value loss, each reduced over the tokens as ``config.reduction`` says."""
    logits = models["policy"](batch.ids[:, :-1])
    logprobs = gather_logprobs(logits, batch.ids[:, 1:])
    if config.method == "reinforce":
        return policy_gradient_loss(logprobs, batch.advantages, batch.mask, config.reduction)
    loss, _ = ppo_clipped_loss(
        logprobs, batch.old_logprobs, batch.advantages, batch.mask, config.clip, config.reduction
    )
    if config.method == "grpo":
        kl = kl_estimate(logprobs, batch.ref_logprobs, "k3")
        return loss + config.beta * reduce_tokens(kl, batch.mask, config.reduction)
    values = models["value"](batch.ids[:, :-1])
    return loss + config.value_coef * value_loss(
        values, batch.returns, batch.mask, config.reduction
    )


def update_policy(
    policy: nn.Module,
    experience: Experience,
    config: RLConfig,
    optimizer: torch.optim.Optimizer,
    value_model: ScalarModel | None = None,
) -> float:
    """Step 4: ``epochs`` x ``minibatches`` optimizer steps on the experience (the
    optimizer holds the policy's parameters, and the value model's for PPO).

    Each minibatch's gradient is accumulated over ``microbatches`` pieces weighted by
    their share of the items the reduction averages (tokens for ``"token-mean"``,
    responses otherwise), so that it equals the gradient of the whole minibatch. Dropout
    is off (as in the rollout), so that before the first update the ratio to the
    sampling policy is exactly 1; the models' modes are restored afterwards.

    Returns:
        The mean loss of the last epoch.
    """
    models = nn.ModuleDict({"policy": policy} | ({"value": value_model} if value_model else {}))
    modes = [model.training for model in models.values()]
    models.eval()  # no dropout: the log-probabilities must be those of the sampling policy
    try:
        for _ in range(config.epochs):
            losses = []
            for minibatch in experience.split(config.minibatches):
                pieces = minibatch.split(config.microbatches)
                weights = [
                    float(piece.mask.sum()) if config.reduction == "token-mean" else len(piece)
                    for piece in pieces
                ]
                optimizer.zero_grad(set_to_none=True)
                loss = accumulate_gradients(
                    lambda m, b: _loss(m, b, config), models, pieces, weights=weights
                )
                optimizer_step(optimizer, config.grad_clip)
                losses.append(float(loss))
    finally:
        for model, mode in zip(models.values(), modes, strict=True):
            model.train(mode)
    return sum(losses) / len(losses)


def rl_step(
    policy: nn.Module,
    reference: nn.Module,
    prompts: Sequence[Sequence[int]],
    reward_fn: RewardFn,
    config: RLConfig,
    optimizer: torch.optim.Optimizer,
    *,
    eos_id: int,
    pad_id: int,
    generator: torch.Generator | None = None,
    value_model: ScalarModel | None = None,
) -> dict[str, float]:
    """One iteration of the loop: rollout, score, experience, update.

    Returns:
        The rollout's statistics: ``"score"`` (mean reward), ``"kl"`` (mean sequence KL
        estimate to the reference, ``k1`` summed over tokens), ``"length"`` (mean response
        tokens), ``"finished"`` (fraction that ended with ``eos_id``) and ``"loss"``.
    """
    rollout = sample_rollout(
        policy,
        prompts,
        config.group_size,
        config.max_new_tokens,
        eos_id,
        pad_id,
        config.temperature,
        generator,
    )
    scores = reward_fn(rollout).float()
    experience = collect_experience(policy, reference, rollout, scores, config, value_model)
    loss = update_policy(policy, experience, config, optimizer, value_model)
    kl = (experience.old_logprobs - experience.ref_logprobs).masked_fill(~experience.mask, 0)
    return {
        "score": float(scores.mean()),
        "kl": float(kl.sum(1).mean()),
        "length": float(rollout.response_lengths.float().mean()),
        "finished": float(rollout.finished.float().mean()),
        "loss": loss,
    }


def evaluate_policy(
    policy: nn.Module,
    reference: nn.Module,
    prompts: Sequence[Sequence[int]],
    reward_fns: Mapping[str, RewardFn],
    *,
    samples: int,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    seed: int = 0,
) -> dict[str, float]:
    """A policy's mean rewards and KL to the reference on fixed prompts.

    Samples ``samples`` responses to each prompt at temperature 1 with a generator seeded
    by ``seed`` (the same draws for every policy evaluated with that seed) and returns each
    named reward's mean, ``"kl"``: the mean over responses of ``log p(s) - log p_ref(s)``
    (an unbiased estimate of ``KL(p || p_ref)`` between the response distributions), and
    ``"length"``.
    """
    check_int("samples", samples)
    generator = torch.Generator().manual_seed(seed)
    rollout = sample_rollout(
        policy, prompts, samples, max_new_tokens, eos_id, pad_id, 1.0, generator
    )
    with eval_no_grad(policy, reference):
        logp, mask = response_logprobs(policy, rollout.ids, rollout.response_mask)
        ref, _ = response_logprobs(reference, rollout.ids, rollout.response_mask)
    result = {name: float(fn(rollout).float().mean()) for name, fn in reward_fns.items()}
    result["kl"] = float((logp - ref).masked_fill(~mask, 0.0).sum(1).mean())
    result["length"] = float(rollout.response_lengths.float().mean())
    return result
