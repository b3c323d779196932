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
