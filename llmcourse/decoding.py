"""Decoding: turning a language model's next-token distributions into text.

A left-to-right model gives ``P(w_t | w_1 .. w_{t-1})``; a decoding strategy chooses
each next token from it. Two families:

- **search** for a likely sequence. :func:`greedy` takes the most probable token at
  every step; :func:`beam_search` keeps the ``beam_width`` best partial sequences by
  their summed log-probability ``sum_t log P(w_t | w_<t)``, optionally divided by
  ``length ** length_penalty`` so that longer sequences are not punished merely for
  being longer.
- **sampling** from a reshaped distribution (:func:`sample`, :func:`sample_next`).
  Temperature divides the logits, ``softmax(z / tau)`` (``tau < 1`` sharpens,
  ``tau > 1`` flattens); top-k keeps the ``k`` most probable tokens (Fan et al., 2018);
  top-p, nucleus sampling, keeps the smallest set of most probable tokens whose
  probabilities add up to at least ``p`` (Holtzman et al., 2020). The kept logits are
  renormalised by the softmax.

The three logit transforms follow Hugging Face's ``TemperatureLogitsWarper``,
``TopKLogitsWarper`` and ``TopPLogitsWarper`` (tested for parity) and are applied in
their order: temperature, then top-k, then top-p. Removed tokens get the logit
``-inf`` (probability 0). Ties:

- top-k keeps every token whose logit equals the ``k``-th largest, so ties can keep
  more than ``k`` tokens;
- top-p sorts the tokens and cuts the sorted list, so tokens tied at the edge of the
  nucleus can be split; the kept number is Hugging Face's, and of the tied tokens the
  higher ids are kept (a stable sort; Hugging Face's unstable sort leaves it open).

``min_tokens_to_keep`` (default 1) is a floor on the number of tokens either filter
keeps. A model here is anything with ``model(idx: (batch, time) long) -> logits
(batch, time, vocab)``; if it has ``model.config.block_size``, only the last
``block_size`` tokens are fed to it.

Key-value cache: a model with a ``new_cache()`` method that accepts
``model(idx_new, cache=cache)`` (:class:`llmcourse.transformer.GPT`) is run through
:class:`CachedModel`, which feeds it only the tokens it has not read yet: the prompt,
then one token per step. Beam search reorders the cache along with its hypotheses.
Every decoding function takes ``use_cache=False`` to recompute the whole window at
every step instead; both give the same tokens (their logits agree up to rounding).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

# ------------------------------------------------------------------ argument checks


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_temperature(temperature: object) -> None:
    number = isinstance(temperature, int | float) and not isinstance(temperature, bool)
    if not number or not 0 < temperature < math.inf:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")


def _check_top_p(top_p: object) -> None:
    number = isinstance(top_p, int | float) and not isinstance(top_p, bool)
    if not number or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def check_sampling_args(
    temperature: float, top_k: int | None, top_p: float | None, min_tokens_to_keep: int = 1
) -> None:
    """Raise a ValueError unless ``temperature > 0``, ``top_k`` is None or >= 1, ``top_p`` is
    None or in ``(0, 1]`` and ``min_tokens_to_keep >= 1``."""
    _check_temperature(temperature)
    if top_k is not None:
        _check_int("top_k", top_k, 1)
    if top_p is not None:
        _check_top_p(top_p)
    _check_int("min_tokens_to_keep", min_tokens_to_keep, 1)


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
    _check_temperature(temperature)
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
    _check_int("k", k, 1)
    _check_int("min_tokens_to_keep", min_tokens_to_keep, 1)
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
    _check_int("min_tokens_to_keep", min_tokens_to_keep, 1)
    ascending, order = logits.sort(dim=-1, stable=True)
    tail_mass = ascending.softmax(dim=-1).cumsum(dim=-1)  # (..., vocab)
    remove = tail_mass <= 1 - top_p
    remove[..., -min_tokens_to_keep:] = False
    remove = remove.scatter(-1, order, remove)  # back to the vocabulary order
    return logits.masked_fill(remove, -math.inf)


def process_logits(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_tokens_to_keep: int = 1,
) -> Tensor:
    """Temperature, then top-k (if ``top_k`` is given), then top-p (if ``top_p`` is given).

    ``logits (..., vocab)`` -> ``(..., vocab)``; ``softmax`` of the result is the
    distribution :func:`sample_next` draws from.
    """
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k, min_tokens_to_keep)
    if top_p is not None:
        logits = top_p_filter(logits, top_p, min_tokens_to_keep)
    return logits


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    min_tokens_to_keep: int = 1,
) -> Tensor:
    """Draw one token per row from ``softmax(process_logits(logits, ...))``.

    Args:
        logits: ``(..., vocab)`` next-token logits (e.g. ``(batch, vocab)``).
        temperature, top_k, top_p, min_tokens_to_keep: as in :func:`process_logits`.
        generator: the random number generator (None: torch's global one).

    Returns:
        ``(...)`` long token ids.
    """
    _check_logits(logits)
    if logits.isnan().any():
        raise ValueError("logits contain NaN")
    if not (logits > -math.inf).any(dim=-1).all():
        raise ValueError("every row of logits needs a token with a finite logit")
    probs = process_logits(logits, temperature, top_k, top_p, min_tokens_to_keep).softmax(-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


# ------------------------------------------------------------------ running a model


@contextlib.contextmanager
def eval_no_grad(*models: nn.Module) -> Iterator[None]:
    """Run ``models`` in eval mode (no dropout) without gradients; restore their modes."""
    modes = [model.training for model in models]
    try:
        for model in models:
            model.eval()
        with torch.no_grad():
            yield
    finally:
        for model, mode in zip(models, modes, strict=True):
            model.train(mode)


def context_size(model: nn.Module) -> int | None:
    """``model.config.block_size`` if the model has one (the longest input it reads)."""
    return getattr(getattr(model, "config", None), "block_size", None)


def check_ids(idx: object) -> None:
    """Raise unless ``idx`` is a ``(batch, time)`` long tensor with ``batch, time >= 1``."""
    if not isinstance(idx, Tensor) or idx.dtype != torch.long or idx.ndim != 2 or 0 in idx.shape:
        got = f"{idx.dtype} {tuple(idx.shape)}" if isinstance(idx, Tensor) else type(idx).__name__
        raise ValueError(f"idx must be a non-empty (batch, time) long tensor, got {got}")


def _check_model_output(logits: object, idx: Tensor) -> None:
    if not isinstance(logits, Tensor) or logits.ndim != 3 or logits.shape[:2] != idx.shape:
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"the model must return logits (batch, time, vocab) = ({idx.shape[0]}, "
            f"{idx.shape[1]}, vocab), got {got}"
        )


def model_logits(model: nn.Module, idx: Tensor) -> Tensor:
    """``model(idx)`` on the last ``block_size`` tokens of ``idx``, shape-checked:
    ``(batch, time', vocab)``."""
    window = context_size(model)
    if window is not None:
        idx = idx[:, -window:]
    logits = model(idx)
    _check_model_output(logits, idx)
    return logits


def supports_cache(model: nn.Module) -> bool:
    """Whether ``model`` has a key-value cache: a ``new_cache()`` method, and
    ``model(idx_new, cache=cache)`` reads ``idx_new`` after the cached positions."""
    return callable(getattr(model, "new_cache", None))


class CachedModel:
    """A model reading a growing sequence, with its key-value cache.

    :meth:`logits` feeds the model only the tokens of ``idx`` that the cache does not
    hold yet, and remembers which tokens it holds (``tokens``, ``(batch, length)``). A
    strategy that takes tokens back calls :meth:`truncate` (speculative decoding, after
    a rejection); one that regroups its rows calls :meth:`reorder` (beam search). An
    ``idx`` that does not start with the cached tokens is an error, not a silent
    recomputation.

    Without a cache (``use_cache=False``, or a model without ``new_cache``), and once
    ``idx`` is longer than the model's ``block_size``, every call reads the last
    ``block_size`` tokens afresh (:func:`model_logits`).
    """

    def __init__(self, model: nn.Module, use_cache: bool = True) -> None:
        self.model = model
        self.cache = model.new_cache() if use_cache and supports_cache(model) else None
        self.tokens: Tensor | None = None

    @property
    def length(self) -> int:
        """The number of positions cached (0 without a cache)."""
        return 0 if self.cache is None else self.cache.length

    def logits(self, idx: Tensor, last: int = 1) -> Tensor:
        """The logits of the last ``last`` positions of ``idx: (batch, time)``:
        ``(batch, last, vocab)``; ``1 <= last <= min(time, block_size)``.

        With a cache, ``idx`` must start with the ``P = length`` cached tokens and add at
        least ``last`` tokens to them (:meth:`truncate` first otherwise); the model reads
        ``idx[:, P:]``, and the cache then holds all of ``idx``.
        """
        check_ids(idx)
        window = context_size(self.model)
        longest = idx.shape[1] if window is None else min(idx.shape[1], window)
        if not isinstance(last, int) or isinstance(last, bool) or not 1 <= last <= longest:
            raise ValueError(f"last must be an integer in [1, {longest}], got {last!r}")
        if self.cache is None or (window is not None and idx.shape[1] > window):
            return model_logits(self.model, idx)[:, -last:]
        cached = self.cache.length
        continues = cached == 0 or torch.equal(self.tokens[:, :cached], idx[:, :cached])
        if cached > idx.shape[1] - last or not continues:
            raise ValueError(
                f"idx must start with the {cached} cached tokens and add at least last={last} "
                "tokens; truncate or reorder the cache to match the sequence first"
            )
        new = idx[:, cached:]
        logits = self.model(new, cache=self.cache)
        _check_model_output(logits, new)
        self.tokens = idx
        return logits[:, -last:]

    def truncate(self, length: int) -> None:
        """Forget the cached positions from ``length`` on (nothing if fewer are cached)."""
        _check_int("length", length, 0)
        if self.cache is not None and length < self.cache.length:
            self.cache.truncate(length)
            self.tokens = self.tokens[:, :length]

    def reorder(self, index: Tensor) -> None:
        """Keep the cached rows ``index: (new_batch,)`` long, in that order."""
        if self.cache is not None and self.tokens is not None:
            self.cache.reorder(index)
            self.tokens = self.tokens[index]


def _check_eos(eos_id: int | None, vocab_size: int) -> None:
    if eos_id is not None and (
        not isinstance(eos_id, int) or isinstance(eos_id, bool) or not 0 <= eos_id < vocab_size
    ):
        raise ValueError(f"eos_id must be None or a token id in [0, {vocab_size}), got {eos_id!r}")


def _generate(
    model: nn.Module,
    idx: Tensor,
    max_new_tokens: int,
    choose: Callable[[Tensor], Tensor],
    eos_id: int | None,
    use_cache: bool,
) -> Tensor:
    """Append ``choose(next-token logits (batch, vocab)) -> (batch,)`` tokens, one per step.

    A row that has produced ``eos_id`` is padded with ``eos_id``; the loop stops when
    every row has, or after ``max_new_tokens`` steps.
    """
    check_ids(idx)
    _check_int("max_new_tokens", max_new_tokens, 0)
    finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
    runner = CachedModel(model, use_cache)
    with eval_no_grad(model):
        for _ in range(max_new_tokens):
            logits = runner.logits(idx)[:, -1]  # (batch, vocab)
            _check_eos(eos_id, logits.shape[-1])
            token = choose(logits)
            if eos_id is not None:
                token = token.masked_fill(finished, eos_id)
                finished |= token == eos_id
            idx = torch.cat([idx, token[:, None]], dim=1)
            if finished.all():
                break
    return idx


def greedy(
    model: nn.Module,
    idx: Tensor,
    max_new_tokens: int,
    eos_id: int | None = None,
    *,
    use_cache: bool = True,
) -> Tensor:
    """Greedy decoding: append ``argmax_v P(v | w_<t)`` (the lowest id among ties).

    Args:
        model: ``model(idx (batch, time)) -> logits (batch, time, vocab)``.
        idx: ``(batch, time)`` long prompt ids.
        max_new_tokens: the most tokens to add, >= 0.
        eos_id: the end-of-sequence token; a row stops at it (and is then padded with it),
            and decoding stops early when every row has stopped. None: never stop early.
        use_cache: keep the keys and values of the tokens read so far, if the model has
            a cache (see :class:`CachedModel`); False recomputes them at every step.

    Returns:
        ``(batch, time + n)`` long, the prompt first; ``n = max_new_tokens`` unless every
        row reached ``eos_id`` sooner.
    """
    return _generate(
        model, idx, max_new_tokens, lambda logits: logits.argmax(-1), eos_id, use_cache
    )


def sample(
    model: nn.Module,
    idx: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    eos_id: int | None = None,
    min_tokens_to_keep: int = 1,
    *,
    use_cache: bool = True,
) -> Tensor:
    """Ancestral sampling: append a token drawn by :func:`sample_next` at every step.

    Arguments and result as in :func:`greedy`; ``temperature``, ``top_k``, ``top_p`` and
    ``min_tokens_to_keep`` as in :func:`process_logits`. With the defaults and the same
    ``generator`` state, this draws the same tokens as ``GPT.generate``, with or without
    the cache.
    """
    check_sampling_args(temperature, top_k, top_p, min_tokens_to_keep)

    def choose(logits: Tensor) -> Tensor:
        return sample_next(logits, temperature, top_k, top_p, generator, min_tokens_to_keep)

    return _generate(model, idx, max_new_tokens, choose, eos_id, use_cache)


# ------------------------------------------------------------------ beam search


@dataclass
class Hypothesis:
    """One sequence found by :func:`beam_search`.

    Attributes:
        tokens: ``(time,)`` long, the prompt then the generated tokens (``eos_id`` last
            when ``finished``).
        log_prob: ``sum log P(w_t | w_<t)`` over the generated tokens.
        score: ``log_prob / n_generated ** length_penalty``, what the search ranks by.
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

    A hypothesis's score is ``log_prob / n ** length_penalty``, ``n`` its number of
    generated tokens (``eos_id`` included): 0 ranks by the plain sum, which favours
    short sequences; 1 by the mean log-probability per token.

    Args:
        model: ``model(idx (batch, time)) -> logits (batch, time, vocab)``.
        idx: ``(1, time)`` long, one prompt.
        beam_width: hypotheses kept per step, >= 1.
        max_new_tokens: the longest continuation, >= 1.
        eos_id: the end-of-sequence token, or None.
        length_penalty: the exponent above, a finite number.
        use_cache: as in :func:`greedy`; the hypotheses are the rows of one batch, and
            the cache's rows are reordered (and repeated) with the hypotheses they
            extend at every step.

    Returns:
        Up to ``beam_width`` hypotheses, best score first.
    """
    check_ids(idx)
    if idx.shape[0] != 1:
        raise ValueError(
            f"beam_search decodes one prompt at a time: idx must be (1, time), "
            f"got {tuple(idx.shape)}"
        )
    _check_int("beam_width", beam_width, 1)
    _check_int("max_new_tokens", max_new_tokens, 1)
    if not isinstance(length_penalty, int | float) or not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty!r}")

    def score(log_prob: float, n: int) -> float:
        return log_prob / n**length_penalty

    def best_possible(log_prob: float, n: int) -> float:
        """The best score a live hypothesis with ``n`` tokens can still reach."""
        return score(log_prob, max_new_tokens if length_penalty > 0 else n)

    alive = idx  # (n_alive, time)
    alive_log_probs = torch.zeros(1, dtype=torch.float64, device=idx.device)
    done: list[Hypothesis] = []
    runner = CachedModel(model, use_cache)
    with eval_no_grad(model):
        for step in range(1, max_new_tokens + 1):
            logits = runner.logits(alive)[:, -1]  # (n_alive, vocab)
            vocab = logits.shape[-1]
            _check_eos(eos_id, vocab)
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
