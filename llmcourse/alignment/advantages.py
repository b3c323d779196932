"""Advantages: how much better than expected each response (or token) was.

The policy gradient (:mod:`llmcourse.alignment.losses`) pushes up the log-probability of
a response in proportion to its reward. Every response then gets pushed, good or bad,
only by different amounts, and the estimate is noisy. Subtracting a **baseline** ``b``
that does not depend on the response keeps the gradient unbiased
(``E[grad log p(s)] = 0``) and removes much of the noise: only responses better than the
baseline are made more likely (Williams, 1992). The advantage is ``A = r - b``.

- :func:`whiten`: subtract the batch mean and divide by the standard deviation
  (normalised advantages).
- :func:`group_advantages`: GRPO's baseline (Shao et al., 2024): sample several
  responses per prompt and compare each with its own group, ``(r - mean_group) /
  std_group`` (or without the division, as Dr. GRPO argues, Liu et al., 2025). No value
  model is needed.
- :func:`gae`: PPO's generalised advantage estimation (Schulman et al., 2016) from
  per-token rewards and a value model's estimates ``V_t``:
  ``delta_t = r_t + gamma V_{t+1} - V_t`` and ``A_t = delta_t + gamma lambda A_{t+1}``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from llmcourse.alignment.logprobs import check_mask_like, masked_mean
from llmcourse.checks import check_int, describe, is_number


def whiten(values: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """``(values - mean) / (std + eps)`` over the entries where ``mask`` is True (all
    without a mask); masked-out entries become 0."""
    if mask is None:
        mask = torch.ones_like(values, dtype=torch.bool)
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    return ((values - mean) / (variance.sqrt() + eps)).masked_fill(~mask, 0.0)


def group_advantages(
    rewards: Tensor, group_size: int, scale: bool = True, eps: float = 1e-6
) -> Tensor:
    """GRPO's advantages: each reward against the other responses to the same prompt.

    Args:
        rewards: ``(batch,)``, consecutive groups of ``group_size`` responses to one prompt.
        group_size: responses per prompt, >= 2, dividing the batch.
        scale: divide by the group's standard deviation (unbiased estimate) as GRPO does;
            False keeps the raw differences from the group mean.

    Returns:
        ``(batch,)``. A group whose rewards are all equal gets advantages 0.
    """
    if not isinstance(rewards, Tensor) or rewards.ndim != 1 or not rewards.is_floating_point():
        raise ValueError(f"rewards must be a 1-D floating-point tensor, got {describe(rewards)}")
    check_int("group_size", group_size, minimum=2)
    if len(rewards) % group_size:
        raise ValueError(
            f"group_size ({group_size}) must divide the batch ({len(rewards)} rewards)"
        )
    groups = rewards.view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (groups.std(dim=1, keepdim=True) + eps)
    return centred.flatten()


def gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over the tokens of each response.

    Args:
        rewards: ``(batch, time)``, the reward of each token (e.g. the sequence reward on
            the last response token, minus a KL penalty on every token).
        values: ``(batch, time)``, the value model's estimate at each token.
        mask: ``(batch, time)`` bool, True at response tokens (one contiguous run per
            row); the value after a row's last token is 0.
        gamma: discount, in ``[0, 1]``.
        lam: GAE's ``lambda``, in ``[0, 1]``: 0 gives one-step TD errors, 1 Monte-Carlo
            returns minus the value.

    Returns:
        ``(advantages, returns)``, both ``(batch, time)``, 0 outside the mask;
        ``returns = advantages + values``, the value model's targets.
    """
    for name, t in (("rewards", rewards), ("values", values)):
        if not isinstance(t, Tensor) or t.ndim != 2 or not t.is_floating_point():
            raise ValueError(f"{name} must be a (batch, time) float tensor, got {describe(t)}")
    if rewards.shape != values.shape:
        raise ValueError(f"rewards and values differ in shape: {rewards.shape}, {values.shape}")
    check_mask_like("mask", mask, rewards)
    for name, x in (("gamma", gamma), ("lam", lam)):
        if not is_number(x) or not 0 <= x <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {x!r}")
    rewards, values = rewards.masked_fill(~mask, 0.0), values.masked_fill(~mask, 0.0)
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = torch.where(mask[:, t], delta + gamma * lam * running, torch.zeros_like(delta))
        advantages[:, t] = running
        next_value = torch.where(mask[:, t], values[:, t], next_value)
    return advantages, (advantages + values).masked_fill(~mask, 0.0)
