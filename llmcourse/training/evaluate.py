"""Evaluating a model: in eval mode without gradients, and the loss over a token stream.

:func:`evaluate` runs any evaluation function with dropout off and no gradients, and
restores the model's mode. :func:`stream_loss` is the standard language-model metric of
the course, the mean next-token cross-entropy (nats per token) over a held-out stream
of ids; :func:`unigram_loss` is the baseline every model should beat.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import check_int, describe


@torch.no_grad()
def evaluate(model: nn.Module, eval_fn: Callable[[nn.Module], float]) -> float:
    """``eval_fn(model)`` in eval mode without gradients; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        return float(eval_fn(model))
    finally:
        model.train(was_training)


def stream_loss(model: nn.Module, ids: Tensor, block_size: int, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy (nats) of ``model`` over a stream of ids.

    The stream is cut into consecutive windows of ``block_size`` predictions: window
    ``k`` reads ``ids[k T : (k + 1) T]`` and predicts ``ids[k T + 1 : (k + 1) T + 1]``
    (the last window may be shorter). Every id but the first is predicted exactly once,
    from the ids before it in its window. Runs in eval mode; the mode is restored.

    Args:
        model: ``model(idx (batch, time)) -> logits (batch, time, vocab)``.
        ids: ``(n,)`` long, ``n >= 2``.
        block_size: the window length ``T``, at most the model's context.
        batch_size: windows per forward pass (the result does not depend on it).
    """
    if not isinstance(ids, Tensor) or ids.ndim != 1 or ids.dtype != torch.long or len(ids) < 2:
        raise ValueError(f"ids must be a 1-D long tensor of at least 2 ids, got {describe(ids)}")
    check_int("block_size", block_size)
    check_int("batch_size", batch_size)
    n_full = (len(ids) - 1) // block_size
    starts = torch.arange(n_full, device=ids.device) * block_size
    offsets = torch.arange(block_size + 1, device=ids.device)
    windows = [ids[starts + offsets[:, None]].T] if n_full else []  # (n_full, T + 1)
    tail = ids[n_full * block_size :]
    if len(tail) >= 2:
        windows.append(tail[None])

    def total_loss(model: nn.Module) -> float:
        total = 0.0
        for group in windows:
            for batch in group.split(batch_size):
                logits = model(batch[:, :-1]).float()
                loss = F.cross_entropy(
                    logits.flatten(0, 1), batch[:, 1:].flatten(), reduction="sum"
                )
                total += loss.item()
        return total

    return evaluate(model, total_loss) / (len(ids) - 1)


def unigram_loss(train_ids: Tensor, eval_ids: Tensor, vocab_size: int) -> float:
    """A baseline: the cross-entropy (nats per token) of ``eval_ids[1:]`` under the
    add-one smoothed unigram distribution of ``train_ids`` (both ``(n,)`` long)."""
    counts = torch.bincount(train_ids, minlength=vocab_size).double() + 1.0
    log_probs = counts.log() - math.log(counts.sum().item())
    return -log_probs[eval_ids[1:]].mean().item()
