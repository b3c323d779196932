"""Sampling: reshaping a next-token distribution, then drawing from it.

A left-to-right model gives ``P(w_t | w_1 .. w_{t-1})`` as logits. Sampling draws the
next token from a reshaped version of that distribution. Temperature divides the
logits, ``softmax(z / tau)`` (``tau < 1`` sharpens, ``tau > 1`` flattens); top-k keeps
the ``k`` most probable tokens (Fan et al., 2018); top-p, nucleus sampling, keeps the
smallest set of most probable tokens whose probabilities add up to at least ``p``
(Holtzman et al., 2020); min-p keeps the tokens whose probability is at least ``min_p``
times that of the most probable token (Nguyen et al., 2024). The kept logits are
renormalised by the softmax.

The four logit transforms follow Hugging Face's ``TemperatureLogitsWarper``,
``TopKLogitsWarper``, ``TopPLogitsWarper`` and ``MinPLogitsWarper`` (tested for parity)
and are applied in their order: temperature, then top-k, then top-p, then min-p.
Removed tokens get the logit ``-inf`` (probability 0). Ties:

- top-k keeps every token whose logit equals the ``k``-th largest, so ties can keep
  more than ``k`` tokens;
- top-p sorts the tokens and cuts the sorted list, so tokens tied at the edge of the
  nucleus can be split; the kept number is Hugging Face's, and of the tied tokens the
  higher ids are kept (a stable sort; Hugging Face's unstable sort leaves it open).

``min_tokens_to_keep`` (default 1) is a floor on the number of tokens any filter
keeps.

A **repetition penalty** (Keskar et al., 2019, CTRL) lowers the logits of the tokens
that are already in the sequence, before any of the transforms above
(:func:`apply_repetition_penalty`). The generation loop that calls :func:`draw` once per
token is in :mod:`llmcourse.generation.generate`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from llmcourse.checks import check_int, check_positive, check_token_ids, is_number

# ------------------------------------------------------------------ argument checks


def _check_top_p(top_p: object) -> None:
    if not is_number(top_p) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def _check_min_p(min_p: object) -> None:
    if not is_number(min_p) or not 0 <= min_p <= 1:
        raise ValueError(f"min_p must be in [0, 1], got {min_p!r}")


def check_sampling_args(
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    min_tokens_to_keep: int = 1,
    min_p: float | None = None,
) -> None:
    """Raise a ValueError unless ``temperature > 0``, ``top_k`` is None or >= 1, ``top_p`` is
    None or in ``(0, 1]``, ``min_tokens_to_keep >= 1`` and ``min_p`` is None or in
    ``[0, 1]``."""
    check_positive("temperature", temperature)
    if top_k is not None:
        check_int("top_k", top_k)
    if top_p is not None:
        _check_top_p(top_p)
    check_int("min_tokens_to_keep", min_tokens_to_keep)
    if min_p is not None:
        _check_min_p(min_p)


def _check_logits(logits: object) -> None:
    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.ndim < 1:
        got = f"{logits.dtype} {tuple(logits.shape)}" if isinstance(logits, Tensor) else logits
        raise ValueError(f"logits must be a floating-point tensor (..., vocab), got {got!r}")
    if logits.shape[-1] < 1:
        raise ValueError("logits must have at least one token (vocab >= 1)")


# ------------------------------------------------------------------ logit transforms


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """``logits / temperature``: ``logits (..., vocab)`` -> ``(..., vocab)``.

    ``softmax(z / tau)`` is sharper than ``softmax(z)`` for ``tau < 1`` (the argmax as
    ``tau -> 0``) and flatter for ``tau > 1`` (uniform as ``tau -> inf``).
    """
    _check_logits(logits)
    check_positive("temperature", temperature)
    return logits / temperature


def top_k_filter(logits: Tensor, k: int, min_tokens_to_keep: int = 1) -> Tensor:
    """Set every logit below the ``k``-th largest of its row to ``-inf``.

    Args:
        logits: ``(..., vocab)``.
        k: tokens to keep, >= 1; ``max(k, min_tokens_to_keep)`` of them, at most ``vocab``.
        min_tokens_to_keep: a floor on ``k``, >= 1.

    Returns:
        ``(..., vocab)``; a token tied with the ``k``-th largest logit is kept.
    """
    _check_logits(logits)
    check_int("k", k)
    check_int("min_tokens_to_keep", min_tokens_to_keep)
    k = min(max(k, min_tokens_to_keep), logits.shape[-1])
    kth_largest = logits.topk(k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, -math.inf)


def top_p_filter(logits: Tensor, top_p: float, min_tokens_to_keep: int = 1) -> Tensor:
    """Nucleus filtering: keep the smallest set of most probable tokens with total
    probability ``>= top_p``; set the other logits to ``-inf``.

    Sorted from least to most probable, a token is removed when the probabilities up to
    and including it sum to at most ``1 - top_p``; the ``min_tokens_to_keep`` most
    probable tokens are always kept. ``top_p = 1`` removes only tokens whose
    probability is 0 in floating point.

    Args:
        logits: ``(..., vocab)``.
        top_p: in ``(0, 1]``.
        min_tokens_to_keep: >= 1.

    Returns:
        ``(..., vocab)``.
    """
    _check_logits(logits)
    _check_top_p(top_p)
    check_int("min_tokens_to_keep", min_tokens_to_keep)
    ascending, order = logits.sort(dim=-1, stable=True)
    tail_mass = ascending.softmax(dim=-1).cumsum(dim=-1)  # (..., vocab)
    remove = tail_mass <= 1 - top_p
    remove[..., -min_tokens_to_keep:] = False
    remove = remove.scatter(-1, order, remove)  # back to the vocabulary order
    return logits.masked_fill(remove, -math.inf)


def min_p_filter(logits: Tensor, min_p: float, min_tokens_to_keep: int = 1) -> Tensor:
    """Min-p filtering (Nguyen et al., 2024): remove every token whose probability is below
    ``min_p`` times the largest probability of its row; set its logit to ``-inf``.

    The threshold scales with the model's confidence: where the most probable token has
    0.9, tokens below ``0.9 min_p`` go; where it has 0.05, only those below ``0.05 min_p``.
    ``min_p = 0`` keeps every token, ``min_p = 1`` only the most probable ones (all of
    them if tied). As in Hugging Face's ``MinPLogitsWarper``, the ``min_tokens_to_keep``
    most probable tokens are always kept (``torch.topk`` of the probabilities).

    Args:
        logits: ``(..., vocab)``.
        min_p: in ``[0, 1]``.
        min_tokens_to_keep: >= 1.

    Returns:
        ``(..., vocab)``.
    """
    _check_logits(logits)
    _check_min_p(min_p)
    check_int("min_tokens_to_keep", min_tokens_to_keep)
    probs = logits.softmax(dim=-1)
    remove = probs < min_p * probs.amax(dim=-1, keepdim=True)
    k = min(min_tokens_to_keep, logits.shape[-1])
    remove = remove.scatter(-1, probs.topk(k, dim=-1).indices, False)
    return logits.masked_fill(remove, -math.inf)


def apply_repetition_penalty(logits: Tensor, previous: Tensor, penalty: float) -> Tensor:
    """Lower the logits of the tokens already in the sequence (Keskar et al., 2019).

    Every token id that occurs in ``previous`` (once or many times) has its logit ``z``
    replaced by ``z / penalty`` if ``z > 0`` and by ``z * penalty`` if ``z < 0``, so that
    ``penalty > 1`` always makes it less likely. CTRL's paper divides every such logit by
    ``penalty``, which *raises* a negative one; the sign rule is Hugging Face's
    ``RepetitionPenaltyLogitsProcessor`` (tested for parity), whose ids include the
    prompt. ``penalty = 1`` changes nothing; CTRL used 1.2.

    Args:
        logits: ``(batch, vocab)`` next-token logits.
        previous: ``(batch, time)`` long, the ids of each row's sequence so far; each in
            ``[0, vocab)``.
        penalty: > 0.

    Returns:
        ``(batch, vocab)``.
    """
    _check_logits(logits)
    check_token_ids("previous", previous)
    check_positive("penalty", penalty)
    if logits.ndim != 2 or logits.shape[0] != previous.shape[0]:
        raise ValueError(
            f"logits must be (batch, vocab) with the batch of previous {tuple(previous.shape)}, "
            f"got {tuple(logits.shape)}"
        )
    seen = logits.gather(-1, previous)  # (batch, time); an id out of range is gather's error
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(-1, previous, seen)


def process_logits(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_tokens_to_keep: int = 1,
    min_p: float | None = None,
) -> Tensor:
    """Temperature, then top-k (if ``top_k`` is given), then top-p (if ``top_p`` is given),
    then min-p (if ``min_p`` is given).

    ``logits (..., vocab)`` -> ``(..., vocab)``; ``softmax`` of the result is the
    distribution :func:`sample_next` draws from.
    """
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k, min_tokens_to_keep)
    if top_p is not None:
        logits = top_p_filter(logits, top_p, min_tokens_to_keep)
    if min_p is not None:
        logits = min_p_filter(logits, min_p, min_tokens_to_keep)
    return logits


def draw(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    min_tokens_to_keep: int = 1,
    min_p: float | None = None,
) -> Tensor:
    """:func:`sample_next` without its checks of the logits' values, for loops that call it
    once per token (reading every logit to check it would cost a pass over the vocabulary
    per token and, on an accelerator, a synchronisation)."""
    probs = process_logits(logits, temperature, top_k, top_p, min_tokens_to_keep, min_p)
    probs = probs.softmax(-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    min_tokens_to_keep: int = 1,
    min_p: float | None = None,
) -> Tensor:
    """Draw one token per row from ``softmax(process_logits(logits, ...))``.

    Args:
        logits: ``(..., vocab)`` next-token logits (e.g. ``(batch, vocab)``).
        temperature, top_k, top_p, min_tokens_to_keep, min_p: as in :func:`process_logits`.
        generator: the random number generator (None: torch's global one).

    Returns:
        ``(...)`` long token ids.
    """
    _check_logits(logits)
    if logits.isnan().any():
        raise ValueError("logits contain NaN")
    if not (logits > -math.inf).any(dim=-1).all():
        raise ValueError("every row of logits needs a token with a finite logit")
    return draw(logits, temperature, top_k, top_p, generator, min_tokens_to_keep, min_p)
