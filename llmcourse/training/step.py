"""The pieces of one training step, for the default loop and for loops a chapter writes.

A step of gradient descent on a batch, as every loop in the course does it::

    set_learning_rate(optimizer, lr_at(step, ...))          # the schedule
    optimizer.zero_grad(set_to_none=True)
    loss = accumulate_gradients(loss_fn, model, microbatches, precision)
    grad_norm = optimizer_step(optimizer, grad_clip)         # clip, then update

The gradients stay in ``.grad`` after the update (until the next step zeroes them), so
they can be inspected.

:func:`accumulate_gradients` runs the backward pass of each microbatch with its loss
weighted by its share of the items: the gradients add up to those of the mean loss
over one large batch made of them, without holding the large batch's activations in
memory at once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from llmcourse.training.optim import clip_grad_norm

PRECISIONS = ("fp32", "bf16")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every parameter group of ``optimizer`` the learning rate ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def precision_context(device_type: str, precision: str) -> contextlib.AbstractContextManager:
    """A reusable context: bfloat16 autocast for ``"bf16"``, nothing for ``"fp32"``.

    Under bf16 autocast, matrix products run in bfloat16 while parameters, gradients and
    optimizer state stay float32; bf16 has float32's exponent range, so no loss scaling
    is needed (float16 would need it, to keep small gradients from underflowing to 0).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def accumulate_gradients(
    loss_fn: Callable[[nn.Module, Any], Tensor],
    model: nn.Module,
    microbatches: Sequence[Any],
    precision: str = "fp32",
    weights: Sequence[float] | None = None,
) -> Tensor:
    """Backpropagate ``loss_fn(model, mb) * w`` for every microbatch and its weight ``w``.

    When each microbatch loss is a mean over its own items (tokens, sequences), the
    update equals the one of a single large batch if each is weighted by its share of
    the items: ``weights`` = the items of each microbatch (they are normalised to sum to
    1). Without ``weights`` every microbatch counts the same, ``1 / len(microbatches)``,
    which is right when they hold equally many items.

    Args:
        loss_fn: ``loss_fn(model, microbatch)`` -> scalar loss tensor.
        model: passed to ``loss_fn`` (a ``DistributedDataParallel`` wrapper averages the
            gradients across processes in its backward pass).
        microbatches: one or more batches; the gradients of all of them are added to
            the parameters' ``.grad`` (zero them first: ``optimizer.zero_grad()``).
        precision: ``"fp32"`` or ``"bf16"`` (autocast around ``loss_fn``).
        weights: one non-negative number per microbatch, not all 0 (e.g. its count of
            loss tokens); None weighs them equally.

    Returns:
        The weighted mean of the microbatch losses, detached (a 0-d tensor).
    """
    if not microbatches:
        raise ValueError("microbatches must hold at least one batch")
    if weights is None:
        shares = [1 / len(microbatches)] * len(microbatches)
    else:
        if len(weights) != len(microbatches) or min(weights) < 0 or not sum(weights) > 0:
            raise ValueError(
                f"weights must be {len(microbatches)} numbers >= 0 with a positive sum, "
                f"got {list(weights)}"
            )
        shares = [w / sum(weights) for w in weights]
    device_type = next(model.parameters()).device.type
    context = precision_context(device_type, precision)
    total = torch.zeros(())
    for batch, share in zip(microbatches, shares, strict=True):
        with context:
            loss = loss_fn(model, batch)
        if not isinstance(loss, Tensor) or loss.ndim != 0:
            raise ValueError("loss_fn must return a scalar tensor")
        (loss * share).backward()
        total = total + loss.detach().float().cpu() * share
    return total


def optimizer_step(optimizer: torch.optim.Optimizer, grad_clip: float | None = 1.0) -> Tensor:
    """Clip the global gradient norm of the optimizer's parameters to ``grad_clip`` (None:
    no clipping), then update them. Returns the norm before clipping (a 0-d tensor)."""
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip!r}")
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    norm = clip_grad_norm(parameters, math.inf if grad_clip is None else grad_clip)
    optimizer.step()
    return norm
