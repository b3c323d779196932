"""The course's document format: documents joined by ``<|endoftext|>``, and the fixed
evaluation documents every shipped model is measured on.

The training text of the course's pretrained models is a stream of documents (a prose
paragraph, or one grammar sentence written by :func:`grammar_text`), each preceded by
``<|endoftext|>``: ``<|endoftext|>doc 1<|endoftext|>doc 2...`` (:func:`document_stream`).
A prompt for such a model should therefore start with ``<|endoftext|>``. The tokenizer
reserves special tokens for later chapters (:data:`SPECIAL_TOKENS`): padding,
masked-LM and span corruption (``<|mask|>``, the sentinels ``<|extra_0|>`` ...), and
chat turns (``<|system|>``, ``<|user|>``, ``<|assistant|>``).

**Evaluation documents** (:func:`evaluation_documents`): the prose validation split
(whole) and :data:`EVAL_GRAMMAR_SENTENCES` grammar sentences drawn with seed
:data:`EVAL_GRAMMAR_SEED` (no training sentence is drawn with that seed).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from llmcourse.data.grammar import english_grammar
from llmcourse.data.labelled import WordClasses
from llmcourse.data.prose import python_docs
from llmcourse.text.bpe import BPETokenizer

EOT = "<|endoftext|>"
SPECIAL_TOKENS: tuple[str, ...] = (
    EOT,
    "<|pad|>",
    "<|mask|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    *(f"<|extra_{i}|>" for i in range(8)),
)
"""The reserved special tokens, in id order (they take the last ids of the vocabulary)."""
EVAL_GRAMMAR_SEED = 1_000_000
EVAL_GRAMMAR_SENTENCES = 500


def special_id(tokenizer: BPETokenizer, name: str) -> int:
    """The id of the special token ``name`` of ``tokenizer``, with a clear error if it has none."""
    if not isinstance(tokenizer, BPETokenizer) or name not in tokenizer.specials:
        raise ValueError(f"the tokenizer must be a BPETokenizer with the special token {name}")
    return tokenizer.specials[name]


def grammar_text(words: Sequence[str]) -> str:
    """A grammar sentence as text: its words joined by single spaces.

    ``["the", "cat", "sleeps", "."]`` -> ``"the cat sleeps ."`` (the full stop is a word
    of the grammar, so it keeps its space and stays one token).
    """
    if isinstance(words, str):
        raise TypeError("words must be a sequence of words, not a str")
    if not words:
        raise ValueError("a grammar sentence has at least one word")
    return " ".join(words)


def topic_documents(
    n_sentences: int, seed: int = 0, sentences_per_document: int = 4
) -> list[list[list[str]]]:
    """Grammar sentences grouped into documents by topic, the noun of their subject.

    The sentences of ``english_grammar().generate(n_sentences, seed)`` whose first noun
    (the subject's) is the same, in order, are cut into documents of
    ``sentences_per_document`` sentences; a shorter remainder is dropped. Consecutive
    sentences of a document share their subject's noun and nothing else, so
    next-sentence prediction on these documents is topic prediction: it can be solved
    by comparing the two subjects, the shortcut Lan et al. (2020) found BERT's NSP
    mostly learns.

    Returns:
        documents, each a list of sentences, each a list of words.
    """
    if not isinstance(n_sentences, int) or n_sentences < 1:
        raise ValueError(f"n_sentences must be a positive integer, got {n_sentences!r}")
    if not isinstance(sentences_per_document, int) or sentences_per_document < 2:
        raise ValueError(
            f"sentences_per_document must be an integer >= 2, got {sentences_per_document!r}"
        )
    grammar = english_grammar()
    nouns = WordClasses.of(grammar).nouns
    by_topic: dict[str, list[list[str]]] = {}
    for sentence in grammar.generate(n_sentences, seed=seed):
        topic = next(w for w in sentence.tokens if w in nouns)
        by_topic.setdefault(topic, []).append(sentence.tokens)
    k = sentences_per_document
    return [
        sentences[i : i + k]
        for sentences in by_topic.values()
        for i in range(0, len(sentences) - k + 1, k)
    ]


def document_stream(tokenizer: BPETokenizer, documents: Sequence[str]) -> Tensor:
    """The ids of ``<|endoftext|>doc 1<|endoftext|>doc 2...``, as one stream.

    The documents are encoded with the tokenizer's default, no special tokens allowed: a
    document that contains the text ``<|endoftext|>`` gets ordinary tokens for it, so data
    cannot inject special tokens.

    Returns:
        ``(n,)`` long, ``n = len(documents) + sum of the documents' token counts``.
    """
    if EOT not in tokenizer.specials:
        raise ValueError(f"the tokenizer has no {EOT} token")
    if isinstance(documents, str) or not documents:
        raise ValueError("documents must be a non-empty sequence of strings")
    eot = tokenizer.specials[EOT]
    ids: list[int] = []
    for document in documents:
        ids.append(eot)
        ids.extend(tokenizer.encode(document))
    return torch.tensor(ids, dtype=torch.long)


def evaluation_documents() -> dict[str, list[str]]:
    """The fixed evaluation sets: ``"prose"`` (the validation paragraphs of
    :func:`python_docs`) and ``"grammar"`` (:data:`EVAL_GRAMMAR_SENTENCES` sentences
    drawn with seed :data:`EVAL_GRAMMAR_SEED`)."""
    grammar = english_grammar().generate(EVAL_GRAMMAR_SENTENCES, seed=EVAL_GRAMMAR_SEED)
    return {
        "prose": python_docs().validation,
        "grammar": [grammar_text(sample.tokens) for sample in grammar],
    }
