"""Token streams for language-model experiments: the grammar word by word, with its exact
floor, and the Python documentation's prose character by character.

**The grammar** (:func:`~llmcourse.data.grammar.english_grammar`) as a language-model
corpus: every word is a token, and ``</s>`` precedes every sentence, so a stream reads
``</s> the cat sleeps . </s> many birds ...``. :func:`grammar_batches` samples fresh
sentences as it goes, so no two windows of a run share text: data is unlimited, and a
run of ``D`` tokens has seen ``D`` distinct tokens. :func:`grammar_eval_set` holds out
whole sentences, each read from its ``</s>``: every word and the next ``</s>`` are
predicted with the whole sentence so far as context, and the lowest possible loss is
known exactly. It is the sample's negative log-probability per predicted token
(:attr:`GrammarEvalSet.floor`), whose expectation is
:meth:`~llmcourse.data.grammar.Grammar.entropy_per_token` (the ``</s>`` after a full
stop is certain, so it adds a prediction and no entropy). No model can go below it on
these sentences, in expectation.

**The prose** (:func:`prose_characters`): the train and validation paragraphs of
:func:`~llmcourse.data.prose.python_docs` joined by newlines, one token per character.
It is small (about 240,000 training characters), so long runs repeat it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import check_int
from llmcourse.data.batching import IGNORE_INDEX
from llmcourse.data.grammar import Grammar, english_grammar
from llmcourse.data.prose import python_docs
from llmcourse.text.words import EOS, UNK, Vocab, char_tokenize

SEPARATOR = EOS
"""The token before every sentence of a grammar stream, ``</s>``."""


def grammar_vocabulary(grammar: Grammar | None = None) -> Vocab:
    """``<unk>``, ``</s>`` and every word of the grammar (alphabetically): 62 tokens for
    the course grammar."""
    grammar = grammar or english_grammar()
    words = {s for alts in grammar.rules.values() for _, symbols in alts for s in symbols}
    return Vocab(sorted(words - set(grammar.rules)), specials=(UNK, SEPARATOR))


def grammar_batches(
    batch_size: int, block_size: int, seed: int, grammar: Grammar | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless next-token batches of fresh grammar text.

    Sentences are drawn with ``random.Random(seed)`` as they are needed and written
    ``</s> words ...`` into one stream; batch ``b`` holds its next ``batch_size *
    block_size`` tokens as ``batch_size`` consecutive windows.

    Yields:
        ``(inputs, targets)``, both ``(batch_size, block_size)`` long; ``targets`` is the
        stream one token later, so every token of the stream is predicted once.
    """
    check_int("batch_size", batch_size)
    check_int("block_size", block_size)
    grammar = grammar or english_grammar()
    vocab = grammar_vocabulary(grammar)
    rng, separator = random.Random(seed), vocab.stoi[SEPARATOR]
    buffer: list[int] = []
    needed = batch_size * block_size + 1
    while True:
        while len(buffer) < needed:
            buffer.append(separator)
            buffer.extend(vocab.encode(grammar.sample(rng).tokens))
        stream = torch.tensor(buffer[:needed])
        del buffer[: needed - 1]  # the last token starts the next batch
        inputs = stream[:-1].view(batch_size, block_size)
        targets = stream[1:].view(batch_size, block_size)
        yield inputs, targets


@dataclass(frozen=True)
class GrammarEvalSet:
    """Held-out grammar sentences, each read from its ``</s>``.

    Attributes:
        inputs: ``(n, length)`` long, ``</s> w_1 .. w_k`` then ``</s>`` padding.
        targets: ``(n, length)`` long, ``w_1 .. w_k </s>`` then
            :data:`~llmcourse.data.batching.IGNORE_INDEX`.
        floor: the sentences' exact negative log-probability (nats) per predicted token.
    """

    inputs: Tensor
    targets: Tensor
    floor: float


def grammar_eval_set(
    n: int, seed: int, max_length: int = 64, grammar: Grammar | None = None
) -> GrammarEvalSet:
    """``n`` sentences of ``grammar`` (default: the course grammar) drawn with ``seed``
    (sentences of ``max_length`` words or more are left out, so that each fits a
    context of ``max_length``)."""
    check_int("n", n)
    check_int("max_length", max_length, minimum=2)
    grammar = grammar or english_grammar()
    vocab = grammar_vocabulary(grammar)
    sentences = [s for s in grammar.generate(n, seed=seed) if len(s.tokens) < max_length]
    length = max(len(s.tokens) for s in sentences) + 1
    separator = vocab.stoi[SEPARATOR]
    inputs = torch.full((len(sentences), length), separator, dtype=torch.long)
    targets = torch.full((len(sentences), length), IGNORE_INDEX, dtype=torch.long)
    for row, sentence in enumerate(sentences):
        ids = vocab.encode(sentence.tokens)
        inputs[row, 1 : len(ids) + 1] = torch.tensor(ids)
        targets[row, : len(ids) + 1] = torch.tensor([*ids, separator])
    predicted = sum(len(s.tokens) + 1 for s in sentences)
    floor = -sum(s.log_prob for s in sentences) / predicted
    return GrammarEvalSet(inputs, targets, floor)


@torch.no_grad()
def sentence_loss(model: nn.Module, eval_set: GrammarEvalSet, batch_size: int = 256) -> float:
    """Mean next-token cross-entropy (nats) of ``model`` over the predicted tokens of the
    sentences: ``model(inputs (batch, length)) -> logits (batch, length, vocab)``. The
    model's mode is left as it is (call it in eval mode)."""
    total, count = 0.0, 0
    for inputs, targets in zip(
        eval_set.inputs.split(batch_size), eval_set.targets.split(batch_size), strict=True
    ):
        logits = model(inputs).float()
        total += F.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
        ).item()
        count += int((targets != IGNORE_INDEX).sum())
    return total / count


@dataclass(frozen=True)
class CharacterCorpus:
    """A character vocabulary and the train and validation streams of its ids."""

    vocab: Vocab
    train: Tensor
    validation: Tensor


def prose_characters() -> CharacterCorpus:
    """The Python documentation's prose, one token per character (paragraphs joined by
    newlines); characters seen only in validation map to ``<unk>``."""
    docs = python_docs()
    train_text, validation_text = "\n".join(docs.train), "\n".join(docs.validation)
    vocab = Vocab(char_tokenize(train_text), specials=(UNK,))
    return CharacterCorpus(
        vocab,
        torch.tensor(vocab.encode(char_tokenize(train_text))),
        torch.tensor(vocab.encode(char_tokenize(validation_text))),
    )
