"""Fine-tuning tasks: labelled grammar examples as token ids, with a head, a loss and a metric.

A :class:`FineTuningTask` holds what fine-tuning a body on one task needs: the training
and test examples as token ids, the head to put on the body, the loss that
:func:`~llmcourse.training.loop.train` minimises and the metric it reports. The three
tasks of Chapter 9, on the course grammar, each start with ``<|endoftext|>``, the
start of a document for the course's pretrained models (:mod:`llmcourse.data.documents`):

- :func:`agreement_task`, sequence classification: is the verb after "the writer of the
  books" singular or plural (:mod:`llmcourse.data.labelled`)?
- :func:`chunking_task`, token classification: the BIO tags of the noun phrases and
  their roles (:mod:`llmcourse.data.phrases`); each word's tag on its first subword;
- :func:`span_qa_task`, span question answering: ``<eot> question <eot> context``, the
  answer the phrase of the context that ends in the question's noun, scored by exact
  match of its first and last tokens.

An example is a pair ``(ids, target)``: a list of token ids and a class, a list of
labels (one per token, :data:`~llmcourse.data.batching.IGNORE_INDEX` where none) or a
``(start, end)`` pair of token positions. Batches are lists of examples, padded when the
loss or the metric runs. :func:`set_trainable` freezes all of a body, all but its last
block, or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import check_choice, check_int
from llmcourse.data.batching import IGNORE_INDEX, pad_batch
from llmcourse.data.documents import EOT, special_id
from llmcourse.data.labelled import agreement_examples
from llmcourse.data.phrases import BIO_TAGS, chunking_examples, qa_examples
from llmcourse.models.heads import (
    FineTuner,
    SequenceClassificationHead,
    SpanQAHead,
    TokenClassificationHead,
    align_labels_to_subwords,
    best_span,
    encode_words,
    span_qa_loss,
)
from llmcourse.text.bpe import BPETokenizer

Example = tuple[list[int], Any]
"""``(token ids, target)``: a class, a list of token labels or a ``(start, end)`` span."""
REGIMES = ("head only", "last block", "full")
"""What :func:`set_trainable` leaves trainable: the head, the head and the body's last
block (and final norm), or everything."""
MAX_ANSWER_TOKENS = 8
"""The longest answer span the QA metric considers, in tokens."""


def padded(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-padded ``ids: (batch, time)`` and the mask of real tokens ``(batch, time)`` bool."""
    ids, lengths = pad_batch(sequences, pad_id)
    return ids, torch.arange(ids.shape[1]) < lengths[:, None]


@dataclass(frozen=True)
class FineTuningTask:
    """One labelled task: examples, a head for a body of width ``d_model``, loss, metric.

    Attributes:
        name: the task's name.
        train, test: the examples.
        make_head: ``d_model -> head`` (a new, randomly initialised head).
        bidirectional: whether a causal body should see the whole input
            (:class:`~llmcourse.models.heads.FineTuner`).
        loss_fn: ``(model, batch) -> loss``, the mean over the batch.
        metric_fn: ``(model, examples) -> float`` in [0, 1], evaluated without gradients.
        metric: the metric's name.
    """

    name: str
    train: list[Example]
    test: list[Example]
    make_head: Callable[[int], nn.Module]
    bidirectional: bool
    loss_fn: Callable[[nn.Module, list[Example]], Tensor]
    metric_fn: Callable[[nn.Module, list[Example]], float]
    metric: str

    def tuner(self, body: nn.Module, d_model: int) -> FineTuner:
        """The body with a fresh head for this task."""
        return FineTuner(body, self.make_head(d_model), bidirectional=self.bidirectional)

    def batches(self, batch_size: int = 16, seed: int = 0) -> Iterator[list[Example]]:
        """Endless batches of training examples drawn uniformly with replacement."""
        check_int("batch_size", batch_size)
        g = torch.Generator().manual_seed(seed)
        while True:
            picks = torch.randint(0, len(self.train), (batch_size,), generator=g).tolist()
            yield [self.train[i] for i in picks]

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> float:
        """The metric on the test examples, in eval mode (the mode is restored)."""
        was_training = model.training
        model.eval()
        try:
            return self.metric_fn(model, self.test)
        finally:
            model.train(was_training)


def _sizes(n_train: int, n_test: int) -> None:
    check_int("n_train", n_train)
    check_int("n_test", n_test)


def agreement_task(
    tokenizer: BPETokenizer, n_train: int = 256, n_test: int = 150, pool: str = "last"
) -> FineTuningTask:
    """Subject-verb agreement as classification: ``<eot> prefix`` -> 0 singular, 1 plural.

    ``pool`` is the head's pooling (``"last"`` for a causal body, ``"first"`` or
    ``"mean"`` for a bidirectional one). Training examples come from seed 1, test
    examples from seed 2.
    """
    _sizes(n_train, n_test)
    eot, pad = special_id(tokenizer, EOT), special_id(tokenizer, "<|pad|>")

    def examples(n: int, seed: int) -> list[Example]:
        return [
            ([eot, *encode_words(tokenizer, ex.prefix)[0]], int(ex.number == "pl"))
            for ex in agreement_examples(n, seed=seed)
        ]

    def loss_fn(model: nn.Module, batch: list[Example]) -> Tensor:
        x, real = padded([s for s, _ in batch], pad)
        return F.cross_entropy(model(x, real), torch.tensor([y for _, y in batch]))

    def accuracy(model: nn.Module, data: list[Example]) -> float:
        x, real = padded([s for s, _ in data], pad)
        right = model(x, real).argmax(-1) == torch.tensor([y for _, y in data])
        return right.float().mean().item()

    return FineTuningTask(
        "agreement",
        examples(n_train, 1),
        examples(n_test, 2),
        lambda d: SequenceClassificationHead(d, 2, pool=pool),
        False,
        loss_fn,
        accuracy,
        "accuracy",
    )


def chunking_task(tokenizer: BPETokenizer, n_train: int = 256, n_test: int = 150) -> FineTuningTask:
    """BIO chunking as token classification; the metric is the accuracy over the words
    (first subwords). Training sentences come from seed 1, test sentences from seed 2."""
    _sizes(n_train, n_test)
    eot, pad = special_id(tokenizer, EOT), special_id(tokenizer, "<|pad|>")

    def examples(n: int, seed: int) -> list[Example]:
        data = []
        for words, tags in chunking_examples(n, seed=seed):
            ids, word_ids = encode_words(tokenizer, words)
            labels = align_labels_to_subwords([BIO_TAGS.index(t) for t in tags], word_ids)
            data.append(([eot, *ids], [IGNORE_INDEX, *labels]))
        return data

    def loss_fn(model: nn.Module, batch: list[Example]) -> Tensor:
        x, real = padded([s for s, _ in batch], pad)
        y, _ = pad_batch([t for _, t in batch], IGNORE_INDEX)
        return F.cross_entropy(model(x, real).flatten(0, 1), y.flatten())

    def accuracy(model: nn.Module, data: list[Example]) -> float:
        x, real = padded([s for s, _ in data], pad)
        y, _ = pad_batch([t for _, t in data], IGNORE_INDEX)
        scored = y != IGNORE_INDEX
        return (model(x, real).argmax(-1)[scored] == y[scored]).float().mean().item()

    return FineTuningTask(
        "chunking",
        examples(n_train, 1),
        examples(n_test, 2),
        lambda d: TokenClassificationHead(d, len(BIO_TAGS)),
        False,
        loss_fn,
        accuracy,
        "word accuracy",
    )


def span_qa_task(tokenizer: BPETokenizer, n_train: int = 256, n_test: int = 150) -> FineTuningTask:
    """Span questions: ``<eot> question <eot> context`` -> the answer's first and last
    token positions; the metric is exact match of both (answers of at most
    :data:`MAX_ANSWER_TOKENS` tokens). The answer starts before the question's noun, so a
    causal body sees the whole input (``bidirectional``). Seeds 1 (train) and 2 (test)."""
    _sizes(n_train, n_test)
    eot, pad = special_id(tokenizer, EOT), special_id(tokenizer, "<|pad|>")

    def examples(n: int, seed: int) -> list[Example]:
        data = []
        for ex in qa_examples(n, seed=seed):
            question = encode_words(tokenizer, [ex.question])[0]
            ids, word_ids = encode_words(tokenizer, ex.context)
            offset = len(question) + 2  # <eot> question <eot> context
            start = word_ids.index(ex.start) + offset
            end = len(word_ids) - 1 - word_ids[::-1].index(ex.end) + offset
            data.append(([eot, *question, eot, *ids], (start, end)))
        return data

    def loss_fn(model: nn.Module, batch: list[Example]) -> Tensor:
        x, real = padded([s for s, _ in batch], pad)
        spans = torch.tensor([span for _, span in batch])
        return span_qa_loss(model(x, real), spans[:, 0], spans[:, 1])

    def exact_match(model: nn.Module, data: list[Example]) -> float:
        x, real = padded([s for s, _ in data], pad)
        spans = torch.tensor([span for _, span in data])
        starts, ends = best_span(model(x, real), max_length=MAX_ANSWER_TOKENS)
        return ((starts == spans[:, 0]) & (ends == spans[:, 1])).float().mean().item()

    return FineTuningTask(
        "span QA",
        examples(n_train, 1),
        examples(n_test, 2),
        SpanQAHead,
        True,
        loss_fn,
        exact_match,
        "exact match",
    )


def _stack(body: nn.Module) -> nn.Module:
    """The Transformer stack whose output the head reads (a T5's encoder)."""
    for name in ("transformer", "encoder"):
        stack = getattr(body, name, None)
        if stack is not None and hasattr(stack, "blocks"):
            return stack
    raise ValueError(f"{type(body).__name__} has no Transformer stack (.transformer or .encoder)")


def set_trainable(tuner: FineTuner, regime: str) -> int:
    """Freeze part of a fine-tuner's body; returns the number of trainable parameters.

    ``"head only"`` trains the head on frozen features (a linear probe for a linear
    head), ``"last block"`` also the body's last block and final norm, ``"full"``
    everything. Frozen parameters get no gradient, so the optimizer leaves them alone
    (:func:`~llmcourse.training.optim.parameter_groups` skips them).
    """
    if not isinstance(tuner, FineTuner):
        raise ValueError(f"tuner must be a FineTuner, got {type(tuner).__name__}")
    check_choice("regime", regime, REGIMES)
    tuner.body.requires_grad_(regime == "full")
    if regime == "last block":
        stack = _stack(tuner.body)
        stack.blocks[-1].requires_grad_(True)
        stack.final_norm.requires_grad_(True)
    tuner.head.requires_grad_(True)
    return sum(p.numel() for p in tuner.parameters() if p.requires_grad)
