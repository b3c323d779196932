"""A small, deterministic training loop shared by every chapter that trains a model.

``train`` runs AdamW for a fixed number of steps on batches drawn from an iterator,
clips the gradient norm, evaluates every ``eval_every`` steps, shows a progress bar,
and returns the loss history. The model, the batches and the loss are the caller's:
``loss_fn(model, batch)`` returns a scalar tensor. Seed the model's initialisation
and the batch sampler, and the whole run is repeatable on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

# A progress bar without timings, so that a rendered notebook is the same on every run.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} {postfix}"


@dataclass
class History:
    """Per-step training loss and gradient norm (before clipping), and evaluations."""

    train_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)


@torch.no_grad()
def evaluate(model: nn.Module, eval_fn: Callable[[nn.Module], float]) -> float:
    """``eval_fn(model)`` in eval mode without gradients; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        return float(eval_fn(model))
    finally:
        model.train(was_training)


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    batches: Iterable[Any],
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    grad_clip: float | None = 1.0,
    eval_fn: Callable[[nn.Module], float] | None = None,
    eval_every: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Train ``model`` for ``steps`` AdamW steps.

    Args:
        model: the module to train (switched to train mode).
        loss_fn: ``loss_fn(model, batch)`` -> scalar loss tensor.
        batches: yields one batch per step; it must not run out before ``steps``.
        steps: number of optimisation steps, >= 1.
        lr: AdamW learning rate, > 0.
        weight_decay: AdamW decoupled weight decay, >= 0.
        grad_clip: clip the global gradient norm to this value; None to not clip.
        eval_fn: ``eval_fn(model)`` -> float, run without gradients in eval mode
            every ``eval_every`` steps and after the last step.
        eval_every: evaluation period in steps; 0 evaluates only at the end.
        progress: show a tqdm progress bar with the running loss.
        desc: the progress bar's label.

    Returns:
        The :class:`History` of the run.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip!r}")
    if not isinstance(eval_every, int) or eval_every < 0:
        raise ValueError(f"eval_every must be an integer >= 0, got {eval_every!r}")
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    history = History()
    batch_iter = iter(batches)
    model.train()
    bar = tqdm(range(1, steps + 1), desc=desc, disable=not progress, bar_format=BAR_FORMAT)
    for step in bar:
        try:
            batch = next(batch_iter)
        except StopIteration:
            raise ValueError(f"batches ran out after {step - 1} of {steps} steps") from None
        loss = loss_fn(model, batch)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise ValueError("loss_fn must return a scalar tensor")
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss is {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(parameters, grad_clip or math.inf)
        optimizer.step()
        history.train_loss.append(loss.item())
        history.grad_norm.append(norm.item())
        if eval_fn is not None and ((eval_every and step % eval_every == 0) or step == steps):
            history.eval_steps.append(step)
            history.eval_loss.append(evaluate(model, eval_fn))
        if step % 10 == 0 or step == steps:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return history
