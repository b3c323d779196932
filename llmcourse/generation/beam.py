"""Beam search: keep the ``beam_width`` best partial sequences instead of one.

Greedy decoding commits to the most probable token at every step and can miss a
sequence whose first token is less probable but whose continuation is much more so.
Beam search keeps the ``beam_width`` best partial sequences (hypotheses) by their
summed log-probability ``sum_t log P(w_t | w_<t)``, optionally divided by a
*length normalizer* ``lp(n)`` so that longer sequences are not punished merely for
being longer (:func:`length_normalizer`): ``n ** alpha`` by default, as in Hugging
Face's beam search, or Wu et al.'s (2016) ``((5 + n) / 6) ** alpha``. Its hypotheses
are the rows of one batch, run through the generation loop's
:class:`~llmcourse.generation.generate.CachedModel`; the key-value cache is reordered
(and rows repeated) with the hypotheses they extend at every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from llmcourse.checks import check_choice, check_int, check_token_ids
from llmcourse.generation.generate import CachedModel, check_eos, eval_no_grad

LENGTH_FORMS = ("power", "gnmt")
"""The length normalizers of :func:`length_normalizer`."""


def length_normalizer(length: int, alpha: float, form: str = "power") -> float:
    """What beam search divides a hypothesis's log-probability by: ``lp(n)``.

    - ``"power"``: ``n ** alpha``; ``alpha = 0`` ranks by the summed log-probability,
      ``alpha = 1`` by the mean per token (Hugging Face's ``length_penalty``).
    - ``"gnmt"``: ``((5 + n) / 6) ** alpha``, the length penalty of Google's neural
      machine translation system (Wu et al., 2016), who used ``alpha`` in 0.6 .. 0.7;
      the constant 5 makes it grow more slowly than ``n ** alpha`` for short outputs.

    Both equal 1 at ``n = 1`` and grow with ``n`` for ``alpha > 0``.

    Args:
        length: ``n``, the number of generated tokens, >= 1.
        alpha: the exponent, a finite number.
        form: one of :data:`LENGTH_FORMS`.
    """
    check_int("length", length)
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")
    check_choice("form", form, LENGTH_FORMS)
    base = length if form == "power" else (5 + length) / 6
    return base**alpha


@dataclass
class Hypothesis:
    """One sequence found by :func:`beam_search`.

    Attributes:
        tokens: ``(time,)`` long, the prompt then the generated tokens (``eos_id`` last
            when ``finished``).
        log_prob: ``sum log P(w_t | w_<t)`` over the generated tokens.
        score: ``log_prob / lp(n_generated)`` (:func:`length_normalizer`), what the
            search ranks by.
        finished: whether the sequence ended with ``eos_id``.
    """

    tokens: Tensor
    log_prob: float
    score: float
    finished: bool


def beam_search(
    model: nn.Module,
    idx: Tensor,
    beam_width: int,
    max_new_tokens: int,
    eos_id: int | None = None,
    length_penalty: float = 0.0,
    *,
    use_cache: bool = True,
    length_form: str = "power",
) -> list[Hypothesis]:
    """Beam search for the continuation of one prompt with the highest score.

    Each step extends every live hypothesis by every token and ranks the extensions by
    their summed log-probability. Of the ``beam_width`` best, those that end in
    ``eos_id`` are finished and set aside; the best extensions that do not end in it
    (taken from the ``2 * beam_width`` best) stay alive, ``beam_width`` of them. After
    ``max_new_tokens`` steps the live hypotheses join the finished ones, unfinished.
    The search stops early once ``beam_width`` hypotheses are finished and no live one
    can still beat the worst of them (log-probabilities only decrease as a sequence
    grows, so this does not change the result). These are the rules of Hugging Face's
    beam search with ``early_stopping="never"``; with ``beam_width = 1`` and no length
    penalty it is :func:`greedy`.

    A hypothesis's score is ``log_prob / lp(n)``, ``n`` its number of generated tokens
    (``eos_id`` included) and ``lp`` the :func:`length_normalizer` of ``length_form``
    with ``alpha = length_penalty``: with ``n ** alpha``, 0 ranks by the plain sum,
    which favours short sequences, and 1 by the mean log-probability per token.

    Args:
        model: ``model(idx (batch, time)) -> logits (batch, time, vocab)``.
        idx: ``(1, time)`` long, one prompt.
        beam_width: hypotheses kept per step, >= 1.
        max_new_tokens: the longest continuation, >= 1.
        eos_id: the end-of-sequence token, or None.
        length_penalty: the exponent ``alpha`` above, a finite number.
        length_form: ``"power"`` (``n ** alpha``) or ``"gnmt"`` (Wu et al.'s
            ``((5 + n) / 6) ** alpha``).
        use_cache: as in :func:`greedy`; the hypotheses are the rows of one batch, and
            the cache's rows are reordered (and repeated) with the hypotheses they
            extend at every step.

    Returns:
        Up to ``beam_width`` hypotheses, best score first.
    """
    check_token_ids("idx", idx)
    if idx.shape[0] != 1:
        raise ValueError(
            f"beam_search decodes one prompt at a time: idx must be (1, time), "
            f"got {tuple(idx.shape)}"
        )
    check_int("beam_width", beam_width)
    check_int("max_new_tokens", max_new_tokens)
    if not isinstance(length_penalty, int | float) or not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty!r}")
    check_choice("length_form", length_form, LENGTH_FORMS)

    def score(log_prob: float, n: int) -> float:
        return log_prob / length_normalizer(n, length_penalty, length_form)

    def best_possible(log_prob: float, n: int) -> float:
        """The best score a live hypothesis with ``n`` tokens can still reach (``lp`` grows
        with ``n`` for a positive exponent, in both forms)."""
        return score(log_prob, max_new_tokens if length_penalty > 0 else n)

    alive = idx  # (n_alive, time)
    alive_log_probs = torch.zeros(1, dtype=torch.float64, device=idx.device)
    done: list[Hypothesis] = []
    runner = CachedModel(model, use_cache)
    with eval_no_grad(model):
        for step in range(1, max_new_tokens + 1):
            logits = runner.logits(alive)[:, -1]  # (n_alive, vocab)
            vocab = logits.shape[-1]
            check_eos(eos_id, vocab)
            totals = (alive_log_probs[:, None] + logits.double().log_softmax(-1)).flatten()
            top_totals, top_ids = totals.topk(min(2 * beam_width, totals.numel()))
            rows, row_log_probs, sources = [], [], []
            candidates = zip(top_totals.tolist(), top_ids.tolist(), strict=True)
            for rank, (total, flat_id) in enumerate(candidates):
                beam, token = divmod(flat_id, vocab)
                tokens = torch.cat([alive[beam], alive.new_tensor([token])])
                if token == eos_id:
                    if rank < beam_width:
                        done.append(Hypothesis(tokens, total, score(total, step), True))
                elif len(rows) < beam_width:
                    rows.append(tokens)
                    row_log_probs.append(total)
                    sources.append(beam)
            done = sorted(done, key=lambda h: h.score, reverse=True)[:beam_width]
            if not rows:
                break
            alive = torch.stack(rows)
            runner.reorder(torch.tensor(sources, device=idx.device))
            alive_log_probs = alive.new_tensor(row_log_probs, dtype=torch.float64)
            if len(done) == beam_width and all(
                best_possible(lp, step) <= done[-1].score for lp in row_log_probs
            ):
                rows, row_log_probs = [], []  # no live hypothesis can enter the result
                break
    survivors = [
        Hypothesis(tokens, lp, score(lp, step), False)
        for tokens, lp in zip(rows, row_log_probs, strict=True)
    ]
    return sorted(done + survivors, key=lambda h: h.score, reverse=True)[:beam_width]
