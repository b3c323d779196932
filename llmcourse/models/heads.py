"""Task heads for fine-tuning a pretrained Transformer body.

A body (:class:`llmcourse.models.gpt.GPT` or :class:`~llmcourse.models.bert.BERT`)
turns tokens into vectors ``hidden: (batch, time, d_model)``; a head turns those vectors
into the task's outputs, and fine-tuning trains both:

- **sequence classification**: pool one vector per sequence and apply a linear layer
  (:class:`SequenceClassificationHead`). BERT pools its first token, ``[CLS]``, which
  sees the whole input; in a causal GPT the first token sees only itself, so GPT pools
  the last token (Radford et al., 2018) (:func:`pool_hidden`);
- **token classification** (e.g. BIO tags): a linear layer at every position
  (:class:`TokenClassificationHead`); a word split into several subwords is labelled
  on its first subword only (:func:`align_labels_to_subwords`);
- **span question answering**: a start vector and an end vector score every position as
  the answer's first and last token (:class:`SpanQAHead`, Devlin et al., 2019).

:class:`FineTuner` joins a body and a head into one module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import on_host
from llmcourse.data.batching import IGNORE_INDEX
from llmcourse.models.bert import BERT
from llmcourse.models.t5 import T5
from llmcourse.text.bpe import BPETokenizer

POOLINGS = ("first", "last", "mean")


def _check_hidden(hidden: Tensor, padding_mask: Tensor | None) -> None:
    if not isinstance(hidden, Tensor) or hidden.ndim != 3:
        shape = tuple(hidden.shape) if isinstance(hidden, Tensor) else type(hidden).__name__
        raise ValueError(f"hidden must be (batch, time, d_model), got {shape}")
    if padding_mask is not None:
        if padding_mask.dtype != torch.bool or padding_mask.shape != hidden.shape[:2]:
            raise ValueError(
                f"padding_mask must be a bool tensor of shape {tuple(hidden.shape[:2])}, "
                f"got {padding_mask.dtype} {tuple(padding_mask.shape)}"
            )
        if on_host(padding_mask) and not padding_mask.any(dim=1).all():
            raise ValueError("every sequence needs at least one real token in padding_mask")


def pool_hidden(hidden: Tensor, how: str = "first", padding_mask: Tensor | None = None) -> Tensor:
    """One vector per sequence: ``hidden (batch, time, d)`` -> ``(batch, d)``.

    Args:
        hidden: the body's hidden states.
        how: ``"first"`` (position 0, BERT's ``[CLS]``), ``"last"`` (the last real token,
            the only one a causal model lets see the whole input) or ``"mean"`` (the
            average over the real tokens).
        padding_mask: ``(batch, time)`` bool, True at real tokens; padding must come after
            the real tokens for ``"last"``. None: no padding.
    """
    if how not in POOLINGS:
        raise ValueError(f"how must be one of {POOLINGS}, got {how!r}")
    _check_hidden(hidden, padding_mask)
    if padding_mask is None:
        padding_mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
    if how == "first":
        return hidden[:, 0]
    if how == "last":
        last = padding_mask.long().cumsum(dim=1).argmax(dim=1)  # the last True position
        return hidden[torch.arange(len(hidden), device=hidden.device), last]
    weights = padding_mask.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1)


class SequenceClassificationHead(nn.Module):
    """Pool, then a linear layer: ``hidden (batch, time, d_model)`` -> ``(batch, n_classes)``."""

    def __init__(self, d_model: int, n_classes: int, pool: str = "first") -> None:
        super().__init__()
        if d_model < 1 or n_classes < 2:
            raise ValueError(f"need d_model >= 1 and n_classes >= 2, got {d_model}, {n_classes}")
        if pool not in POOLINGS:
            raise ValueError(f"pool must be one of {POOLINGS}, got {pool!r}")
        self.pool = pool
        self.linear = nn.Linear(d_model, n_classes)

    def forward(self, hidden: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        return self.linear(pool_hidden(hidden, self.pool, padding_mask))


class TokenClassificationHead(nn.Module):
    """A linear layer at every position.

    ``forward(hidden (batch, time, d_model), padding_mask=None) -> (batch, time, n_labels)``.
    """

    def __init__(self, d_model: int, n_labels: int) -> None:
        super().__init__()
        if d_model < 1 or n_labels < 2:
            raise ValueError(f"need d_model >= 1 and n_labels >= 2, got {d_model}, {n_labels}")
        self.linear = nn.Linear(d_model, n_labels)

    def forward(self, hidden: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        _check_hidden(hidden, padding_mask)
        return self.linear(hidden)


class SpanQAHead(nn.Module):
    """Start and end scores of every position: ``S . h_t`` and ``E . h_t``.

    ``forward(hidden (batch, time, d_model), padding_mask) -> (batch, time, 2)``: index 0
    is the start logit, 1 the end logit; padded positions get ``-inf``.
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        if d_model < 1:
            raise ValueError(f"d_model must be >= 1, got {d_model}")
        self.start = nn.Parameter(torch.randn(d_model) * 0.02)
        self.end = nn.Parameter(torch.randn(d_model) * 0.02)

    def forward(self, hidden: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        _check_hidden(hidden, padding_mask)
        logits = torch.stack([hidden @ self.start, hidden @ self.end], dim=-1)
        if padding_mask is not None:
            logits = logits.masked_fill(~padding_mask[..., None], float("-inf"))
        return logits


def span_qa_loss(logits: Tensor, starts: Tensor, ends: Tensor) -> Tensor:
    """The mean of the start and end cross-entropies.

    Args:
        logits: ``(batch, time, 2)`` from :class:`SpanQAHead`.
        starts, ends: ``(batch,)`` long, the answer's first and last positions.
    """
    if logits.ndim != 3 or logits.shape[-1] != 2:
        raise ValueError(f"logits must be (batch, time, 2), got {tuple(logits.shape)}")
    for name, target in (("starts", starts), ("ends", ends)):
        if target.shape != logits.shape[:1]:
            raise ValueError(f"{name} must be ({len(logits)},), got {tuple(target.shape)}")
    return (F.cross_entropy(logits[..., 0], starts) + F.cross_entropy(logits[..., 1], ends)) / 2


def best_span(logits: Tensor, max_length: int | None = None) -> tuple[Tensor, Tensor]:
    """The span ``start <= end`` (at most ``max_length`` tokens) with the highest
    ``start logit + end logit``: ``logits (batch, time, 2)`` -> ``(starts, ends)``, each
    ``(batch,)`` long."""
    if logits.ndim != 3 or logits.shape[-1] != 2:
        raise ValueError(f"logits must be (batch, time, 2), got {tuple(logits.shape)}")
    time = logits.shape[1]
    max_length = time if max_length is None else max_length
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    scores = logits[:, :, None, 0] + logits[:, None, :, 1]  # (batch, start, end)
    positions = torch.arange(time, device=logits.device)
    offsets = positions[None, :] - positions[:, None]  # end - start
    allowed = (offsets >= 0) & (offsets < max_length)
    flat = scores.masked_fill(~allowed, float("-inf")).flatten(1).argmax(dim=1)
    return flat // time, flat % time


def align_labels_to_subwords(
    word_labels: Sequence[int], word_ids: Sequence[int | None]
) -> list[int]:
    """Token labels from word labels: each word's label on its first subword,
    :data:`~llmcourse.training.objectives.IGNORE_INDEX` on its other subwords and on tokens of no
    word (``None``, e.g. special tokens).

    >>> align_labels_to_subwords([3, 7], [None, 0, 0, 1, None])
    [-100, 3, -100, 7, -100]
    """
    labels = []
    previous = None
    for word in word_ids:
        if word is None:
            labels.append(IGNORE_INDEX)
        elif not 0 <= word < len(word_labels):
            raise ValueError(f"word id {word} is outside the {len(word_labels)} word labels")
        else:
            labels.append(word_labels[word] if word != previous else IGNORE_INDEX)
        previous = word
    return labels


def encode_words(tokenizer: BPETokenizer, words: Sequence[str]) -> tuple[list[int], list[int]]:
    """The token ids of the words joined by spaces, and the word index of every token.

    Each word is encoded on its own, with a leading space after the first, which is how a
    byte-level BPE (:class:`llmcourse.text.bpe.BPETokenizer`) pre-tokenizes ``" ".join(words)``
    when every word is a run of letters or a single symbol.
    """
    if isinstance(words, str):
        raise TypeError("words must be a sequence of words, not a str; split it first")
    ids: list[int] = []
    word_ids: list[int] = []
    for i, word in enumerate(words):
        pieces = tokenizer.encode(word if i == 0 else " " + word)
        ids += pieces
        word_ids += [i] * len(pieces)
    return ids, word_ids


class FineTuner(nn.Module):
    """A body and a head: ``forward(idx (batch, time), padding_mask=None)`` is
    ``head(body.hidden_states(idx ...), padding_mask)``.

    A :class:`~llmcourse.models.bert.BERT` body gets the padding mask, and so does a
    :class:`~llmcourse.models.t5.T5`, whose encoder is the body; a GPT body reads
    causally (right padding cannot change the real tokens' states), or with the whole
    input visible at every position when ``bidirectional`` (its causal mask lifted).
    """

    def __init__(self, body: nn.Module, head: nn.Module, bidirectional: bool = False) -> None:
        super().__init__()
        self.body, self.head, self.bidirectional = body, head, bidirectional

    def forward(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        if isinstance(self.body, BERT):
            hidden = self.body.hidden_states(idx, padding_mask)
        elif isinstance(self.body, T5):
            hidden = self.body.encode(idx, padding_mask)
        elif self.bidirectional:
            visible = torch.ones(idx.shape[1], idx.shape[1], dtype=torch.bool, device=idx.device)
            if padding_mask is not None:
                visible = padding_mask[:, None, None, :]
            hidden = self.body.hidden_states(idx, visible)
        else:
            hidden = self.body.hidden_states(idx)
        return self.head(hidden, padding_mask)
