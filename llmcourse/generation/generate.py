"""The generation loop: running a language model one token at a time, with a KV cache.

A decoding strategy turns a model's next-token distributions into text. This module
runs the loop every strategy shares: feed the sequence, take the logits of the last
position, choose a token, append it, repeat. :func:`greedy` chooses the most probable
token, :func:`sample` draws one (:mod:`llmcourse.generation.sampling`); beam search
(:mod:`llmcourse.generation.beam`) and speculative decoding
(:mod:`llmcourse.generation.speculative`) use the same :class:`CachedModel`. It is the
only generation loop of the package: every model and chapter uses it.

A model here is anything with ``model(idx: (batch, time) long) -> logits (batch, time,
vocab)``; if it has ``model.config.block_size``, only the last ``block_size`` tokens
are fed to it.

Key-value cache: a model with a ``new_cache()`` method that accepts
``model(idx_new, cache=cache)`` (:class:`llmcourse.models.GPT`) is run through
:class:`CachedModel`, which feeds it only the tokens it has not read yet: the prompt,
then one token per step. Every function takes ``use_cache=False`` to recompute the
whole window at every step instead; both give the same tokens (their logits agree up to
rounding). Once a sequence is longer than ``block_size``, every step reads its last
``block_size`` tokens afresh (positions restart at 0, so no cached key stays valid).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from llmcourse.checks import check_int, check_positive, check_token_ids
from llmcourse.generation.sampling import apply_repetition_penalty, check_sampling_args, draw


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
        check_token_ids("idx", idx)
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
        check_int("length", length, minimum=0)
        if self.cache is not None and length < self.cache.length:
            self.cache.truncate(length)
            self.tokens = self.tokens[:, :length]

    def reorder(self, index: Tensor) -> None:
        """Keep the cached rows ``index: (new_batch,)`` long, in that order."""
        if self.cache is not None and self.tokens is not None:
            self.cache.reorder(index)
            self.tokens = self.tokens[index]


def check_eos(eos_id: int | None, vocab_size: int) -> None:
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
    repetition_penalty: float | None = None,
) -> Tensor:
    """Append ``choose(next-token logits (batch, vocab)) -> (batch,)`` tokens, one per step.

    With a ``repetition_penalty``, the logits are first passed through
    :func:`~llmcourse.generation.sampling.apply_repetition_penalty` with the sequence so
    far (the prompt included). A row that has produced ``eos_id`` is padded with
    ``eos_id``; the loop stops when every row has, or after ``max_new_tokens`` steps.
    """
    check_token_ids("idx", idx)
    check_int("max_new_tokens", max_new_tokens, minimum=0)
    if repetition_penalty is not None:
        check_positive("repetition_penalty", repetition_penalty)
    finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
    runner = CachedModel(model, use_cache)
    with eval_no_grad(model):
        for step in range(max_new_tokens):
            logits = runner.logits(idx)[:, -1]  # (batch, vocab)
            if step == 0:
                check_eos(eos_id, logits.shape[-1])
            if repetition_penalty is not None:
                logits = apply_repetition_penalty(logits, idx, repetition_penalty)
            token = choose(logits)
            if eos_id is not None:
                token = token.masked_fill(finished, eos_id)
                finished |= token == eos_id
            idx = torch.cat([idx, token[:, None]], dim=1)
            if eos_id is not None and finished.all():  # reads the tokens: a sync per step
                break
    return idx


def greedy(
    model: nn.Module,
    idx: Tensor,
    max_new_tokens: int,
    eos_id: int | None = None,
    *,
    use_cache: bool = True,
    repetition_penalty: float | None = None,
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
        repetition_penalty: None, or ``> 0``: lower the logits of every token already in
            the row, prompt included, before choosing
            (:func:`~llmcourse.generation.sampling.apply_repetition_penalty`; 1.2 in CTRL).

    Returns:
        ``(batch, time + n)`` long, the prompt first; ``n = max_new_tokens`` unless every
        row reached ``eos_id`` sooner.
    """
    return _generate(
        model,
        idx,
        max_new_tokens,
        lambda logits: logits.argmax(-1),
        eos_id,
        use_cache,
        repetition_penalty,
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
    min_p: float | None = None,
    repetition_penalty: float | None = None,
) -> Tensor:
    """Ancestral sampling: append a token drawn by :func:`sample_next` at every step.

    Arguments and result as in :func:`greedy`; ``temperature``, ``top_k``, ``top_p``,
    ``min_p`` and ``min_tokens_to_keep`` as in
    :func:`~llmcourse.generation.sampling.process_logits`, applied after the
    ``repetition_penalty`` (the order of Hugging Face's logits processors). The same
    ``generator`` state draws the same tokens with or without the cache.
    """
    check_sampling_args(temperature, top_k, top_p, min_tokens_to_keep, min_p)

    def choose(logits: Tensor) -> Tensor:
        return draw(logits, temperature, top_k, top_p, generator, min_tokens_to_keep, min_p)

    return _generate(model, idx, max_new_tokens, choose, eos_id, use_cache, repetition_penalty)
