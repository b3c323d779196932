"""Ensembles and small-to-large: several models, or a small model helping a large one.

- **Model ensembling**: average the next-token *probabilities* of several models,
  ``p(x) = (1/M) sum_m p_m(x)``. Because ``-log`` is convex, the ensemble's
  cross-entropy is never above the models' mean cross-entropy (Jensen's inequality),
  and it is usually below the best model's when they make different errors.
- **A cascade** answers with a small, cheap model when it is confident and calls the
  large model only otherwise: accuracy near the large model's at a fraction of its
  compute, if the small model's confidence tells its right answers from its wrong ones.
- **Weak-to-strong** training {Burns et al., 2023} fine-tunes a strong model on the
  labels of a weak one; :func:`gap_recovered` measures how much of the gap between the
  weak model and a strong model trained on true labels it recovers.

Prompt ensembling is a vote, :func:`llmcourse.prompting.voting.majority_vote`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import check_float_tensor, check_token_ids
from llmcourse.data.batching import IGNORE_INDEX
from llmcourse.generation.generate import eval_no_grad


def ensemble_log_probs(log_probs: Sequence[Tensor]) -> Tensor:
    """The log of the mean of the models' probabilities: ``log_probs`` are ``M`` tensors
    of log-probabilities of one shape ``(..., vocab)``; returns that shape. Computed as
    ``logsumexp_m(log p_m) - log M``, which never underflows."""
    if not log_probs:
        raise ValueError("log_probs must hold at least one model's log-probabilities")
    for i, lp in enumerate(log_probs):
        check_float_tensor(f"log_probs[{i}]", lp)
    stacked = torch.stack(list(log_probs))  # (M, ..., vocab)
    return torch.logsumexp(stacked, dim=0) - math.log(len(log_probs))


def ensemble_loss(models: Sequence[nn.Module], inputs: Tensor, targets: Tensor) -> dict[str, float]:
    """The mean next-token cross-entropy (nats) of every model and of their ensemble.

    Args:
        models: models ``(batch, time) -> (batch, time, vocab)`` over one vocabulary.
        inputs: ``(batch, time)`` long ids.
        targets: ``(batch, time)`` long; :data:`IGNORE_INDEX` where there is no loss.

    Returns:
        ``{"model 0": ..., "model 1": ..., "ensemble": ...}``.
    """
    if not models:
        raise ValueError("models must hold at least one model")
    check_token_ids("inputs", inputs)
    check_token_ids("targets", targets)
    if inputs.shape != targets.shape:
        raise ValueError(f"inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} differ")
    with eval_no_grad(*models):
        log_probs = [F.log_softmax(m(inputs).float(), dim=-1) for m in models]
    losses = {}
    for i, lp in enumerate([*log_probs, ensemble_log_probs(log_probs)]):
        name = f"model {i}" if i < len(models) else "ensemble"
        losses[name] = F.nll_loss(
            lp.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX
        ).item()
    return losses


@dataclass(frozen=True)
class CascadeResult:
    """What a cascade at one threshold did: its accuracy, the fraction of questions sent
    to the large model, and its mean cost per question (in the units of the costs)."""

    threshold: float
    accuracy: float
    escalated: float
    cost: float


def cascade(
    small_correct: Sequence[bool],
    small_confidence: Sequence[float],
    large_correct: Sequence[bool],
    threshold: float,
    small_cost: float,
    large_cost: float,
) -> CascadeResult:
    """Answer with the small model when its confidence is at least ``threshold``, else
    with the large one (which runs after the small one, so that question costs both).

    The correctness of both models' answers and the small model's confidence (e.g. the
    probability of its answer) are given per question.
    """
    n = len(small_correct)
    if not n or len(small_confidence) != n or len(large_correct) != n:
        raise ValueError("need the same non-zero number of questions in all three lists")
    if not small_cost >= 0 or not large_cost >= 0:
        raise ValueError(f"costs must be >= 0, got {small_cost} and {large_cost}")
    escalate = [c < threshold for c in small_confidence]
    right = [
        large if up else small
        for small, large, up in zip(small_correct, large_correct, escalate, strict=True)
    ]
    share = sum(escalate) / n
    return CascadeResult(threshold, sum(right) / n, share, small_cost + share * large_cost)


def gap_recovered(weak: float, weak_to_strong: float, strong: float) -> float:
    """Burns et al.'s performance gap recovered: ``(weak_to_strong - weak) / (strong -
    weak)``, 0 when the student only matches its weak teacher, 1 when it matches the
    strong model trained on true labels."""
    if strong == weak:
        raise ValueError("the strong and weak performances are equal: there is no gap")
    return (weak_to_strong - weak) / (strong - weak)
