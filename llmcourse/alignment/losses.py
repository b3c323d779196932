"""The losses of policy optimisation: REINFORCE, PPO's clipped surrogate, KL, DPO.

**REINFORCE** (Williams, 1992). To maximise the expected reward ``E_{s ~ p}[R(s)]`` of a
policy ``p``, use the log-derivative trick, ``grad p(s) = p(s) grad log p(s)``:

    grad E[R(s)] = sum_s R(s) grad p(s) = E_{s ~ p}[R(s) grad log p(s)],

estimated with sampled responses. If the reward is positive, take gradient steps that
make ``p(s)`` larger; if negative, smaller; with an advantage ``A = R - b`` in place of
``R`` (:mod:`llmcourse.alignment.advantages`), only better-than-expected responses
gain. :func:`policy_gradient_loss` is the loss whose gradient that is.

**PPO** (Schulman et al., 2017) reuses each batch of samples for several updates.
With the ratio ``rho = p_new(token) / p_old(token)`` to the policy that sampled, it
maximises ``min(rho A, clip(rho, 1 - eps, 1 + eps) A)``: once a token's probability has
moved by more than ``eps`` in the direction the advantage asks for, its gradient stops
(:func:`ppo_clipped_loss`).

**KL to a reference.** A policy pushed only towards a learned reward drifts into
responses the reward model never saw and scores wrongly. RLHF subtracts a penalty,
``R(s) = RM(s) - beta log(p_RL(s) / p_ref(s))``, whose expectation is
``beta KL(p_RL || p_ref)``; :func:`kl_estimate` gives Schulman's per-token estimators.

**DPO** (Rafailov et al., 2023): the KL-regularised objective has a closed-form optimum,
``p*(s) ~ p_ref(s) exp(R(s) / beta)``, so a reward can be written through its optimal
policy, ``R(s) = beta log(p*(s) / p_ref(s)) + const``. Put into the Bradley-Terry loss
of preference pairs, the constant cancels and the policy is trained directly
(:func:`dpo_loss`): ``-log sigmoid(beta (log p/p_ref (s_w) - log p/p_ref (s_l)))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from llmcourse.alignment.logprobs import check_mask_like, masked_mean, masked_sum
from llmcourse.checks import check_choice, check_positive, describe

REDUCTIONS = ("token-mean", "sequence-mean", "sum")
KL_ESTIMATORS = ("k1", "k2", "k3")


def _check_same(**tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items() if isinstance(t, Tensor)}
    if len(shapes) != len(tensors) or len(set(shapes.values())) != 1:
        got = {name: describe(t) for name, t in tensors.items()}
        raise ValueError(f"{', '.join(tensors)} must be tensors of one shape, got {got}")


def reduce_tokens(values: Tensor, mask: Tensor, reduction: str = "token-mean") -> Tensor:
    """A scalar from per-token ``values (batch, time)`` over the ``mask``.

    ``"token-mean"``: the mean over every response token of the batch (long responses
    weigh more); ``"sequence-mean"``: the mean of each response's token mean (every
    response weighs the same); ``"sum"``: each response's sum, averaged over the batch
    (the sequence's log-probability, the textbook REINFORCE).
    """
    check_choice("reduction", reduction, REDUCTIONS)
    check_mask_like("mask", mask, values)
    if reduction == "token-mean":
        return masked_mean(values, mask)
    if reduction == "sequence-mean":
        return masked_mean(values, mask, dim=1).mean()
    return masked_sum(values, mask, dim=1).mean()


def policy_gradient_loss(
    logprobs: Tensor, advantages: Tensor, mask: Tensor, reduction: str = "token-mean"
) -> Tensor:
    """REINFORCE: ``-reduce(A * log p(token))``, whose gradient is the policy gradient.

    Args:
        logprobs: ``(batch, time)`` log-probabilities of the sampled tokens (with grad).
        advantages: ``(batch, time)`` per token, or ``(batch,)`` per response (broadcast
            over its tokens); treated as constants.
        mask: ``(batch, time)`` bool, True at response tokens.
    """
    if advantages.ndim == 1:
        advantages = advantages[:, None].expand_as(logprobs)
    _check_same(logprobs=logprobs, advantages=advantages)
    return -reduce_tokens(advantages.detach() * logprobs, mask, reduction)


def ppo_clipped_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip: float = 0.2,
    reduction: str = "token-mean",
) -> tuple[Tensor, Tensor]:
    """PPO's clipped surrogate, as a loss to minimise.

    Per token, with ``rho = exp(logprobs - old_logprobs)``:
    ``-min(rho A, clip(rho, 1 - clip, 1 + clip) A)``, reduced over the mask.

    Returns:
        ``(loss, clipped_fraction)``: the fraction of tokens whose ratio is outside the
        interval in the direction that stops their gradient.
    """
    if advantages.ndim == 1:
        advantages = advantages[:, None].expand_as(logprobs)
    _check_same(logprobs=logprobs, old_logprobs=old_logprobs, advantages=advantages)
    check_positive("clip", clip)
    ratio = (logprobs - old_logprobs.detach()).exp()
    advantages = advantages.detach()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip, 1 + clip) * advantages
    loss = -reduce_tokens(torch.minimum(unclipped, clipped), mask, reduction)
    stopped = (clipped < unclipped).float()
    return loss, masked_mean(stopped.detach(), mask)


def value_loss(
    values: Tensor, returns: Tensor, mask: Tensor, reduction: str = "token-mean"
) -> Tensor:
    """The value model's loss, ``0.5 (V - returns)^2`` reduced over the response tokens
    (:func:`reduce_tokens`)."""
    _check_same(values=values, returns=returns)
    return 0.5 * reduce_tokens((values - returns.detach()) ** 2, mask, reduction)


def kl_estimate(logprobs: Tensor, ref_logprobs: Tensor, kind: str = "k1") -> Tensor:
    """Per-token estimates of ``KL(p || p_ref)`` from tokens sampled from ``p``.

    With ``log r = log p_ref(token) - log p(token)`` (Schulman, 2020):
    ``"k1"``: ``-log r`` (unbiased, can be negative), ``"k2"``: ``(log r)^2 / 2``
    (biased, low variance), ``"k3"``: ``(r - 1) - log r`` (unbiased and >= 0).
    """
    _check_same(logprobs=logprobs, ref_logprobs=ref_logprobs)
    check_choice("kind", kind, KL_ESTIMATORS)
    log_ratio = ref_logprobs - logprobs
    if kind == "k1":
        return -log_ratio
    if kind == "k2":
        return 0.5 * log_ratio**2
    return log_ratio.exp() - 1 - log_ratio


def dpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
) -> tuple[Tensor, Tensor, Tensor]:
    """Direct preference optimisation on sequence log-probabilities, ``(batch,)`` each.

    Returns:
        ``(loss, chosen_rewards, rejected_rewards)``: the mean of
        ``-log sigmoid(beta ((c - c_ref) - (r - r_ref)))``, and the implicit rewards
        ``beta (log p - log p_ref)`` of both responses (detached); their difference is
        the margin.
    """
    _check_same(
        chosen_logps=chosen_logps,
        rejected_logps=rejected_logps,
        ref_chosen_logps=ref_chosen_logps,
        ref_rejected_logps=ref_rejected_logps,
    )
    check_positive("beta", beta)
    chosen_rewards = beta * (chosen_logps - ref_chosen_logps.detach())
    rejected_rewards = beta * (rejected_logps - ref_rejected_logps.detach())
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards).mean()
    return loss, chosen_rewards.detach(), rejected_rewards.detach()
