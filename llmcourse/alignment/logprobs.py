"""Log-probabilities of responses, masks over tokens, and the entropy of a policy.

Reinforcement learning from feedback scores what a language model (the *policy*) wrote
in response to a prompt. A batch holds ``(prompt, response)`` sequences, right-padded:
``ids: (batch, time)`` and ``response_mask: (batch, time)``, True at the response's
tokens (not the prompt's, not the padding). The policy's log-probability of a response
is the sum, over its tokens, of ``log p(token | everything before it)``
(:func:`response_logprobs`): the chain rule of Chapter 1, restricted to the tokens the
policy chose. Losses then average over response tokens (:func:`masked_mean`) or sum per
sequence (:func:`masked_sum`); padding never counts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llmcourse.checks import check_token_ids, describe


def check_mask_like(name: str, mask: object, like: Tensor) -> Tensor:
    """``mask`` if it is a bool tensor of ``like``'s shape."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != like.shape:
        raise ValueError(
            f"{name} must be a bool tensor of shape {tuple(like.shape)}, got {describe(mask)}"
        )
    return mask


def gather_logprobs(logits: Tensor, targets: Tensor) -> Tensor:
    """``log softmax(logits)[target]`` at every position: ``logits (..., vocab)`` and
    ``targets (...)`` long -> ``(...)``."""
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits (..., vocab) must match targets (...): got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    return logits.float().log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)


def response_logprobs(
    model: nn.Module, ids: Tensor, response_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """Per-token log-probabilities of the response tokens under ``model``.

    Args:
        model: ``model(ids (batch, time)) -> logits (batch, time, vocab)``.
        ids: ``(batch, time)`` long, prompt then response then padding in each row.
        response_mask: ``(batch, time)`` bool, True at response tokens.

    Returns:
        ``(logprobs, mask)``, both ``(batch, time - 1)``: ``logprobs[:, t]`` is
        ``log p(ids[:, t + 1] | ids[:, :t + 1])``, and ``mask = response_mask[:, 1:]``
        says which of them are response tokens (the first token is never predicted).
    """
    check_token_ids("ids", ids)
    check_mask_like("response_mask", response_mask, ids)
    if ids.shape[1] < 2:
        raise ValueError(f"ids needs at least 2 positions, got {ids.shape[1]}")
    logits = model(ids[:, :-1])
    return gather_logprobs(logits, ids[:, 1:]), response_mask[:, 1:]


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """The sum of ``values`` where ``mask`` is True (over ``dim``, or everything)."""
    check_mask_like("mask", mask, values)
    kept = values.masked_fill(~mask, 0.0)
    return kept.sum() if dim is None else kept.sum(dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """The mean of ``values`` where ``mask`` is True (over ``dim``, or everything).

    A row (or a whole mask) without a True entry has no mean: it raises a ValueError
    when the mask is in host memory, and gives NaN elsewhere (checking would read it).
    """
    check_mask_like("mask", mask, values)
    count = mask.sum() if dim is None else mask.sum(dim)
    if mask.device.type == "cpu" and (count == 0).any():
        raise ValueError("the mask selects no entry (of some row): the mean is undefined")
    return masked_sum(values, mask, dim) / count


def token_entropy(logits: Tensor) -> Tensor:
    """The entropy ``-sum_v p(v) log p(v)`` of each position's next-token distribution:
    ``logits (..., vocab)`` -> ``(...)``, in nats."""
    log_p = logits.float().log_softmax(-1)
    return -(log_p.exp() * log_p).sum(-1)


def sequence_logprob(logprobs: Tensor, mask: Tensor) -> Tensor:
    """``log p(response | prompt)``: the per-token log-probabilities summed over each
    response, ``(batch, time)`` -> ``(batch,)``."""
    return masked_sum(logprobs, mask, dim=1)
