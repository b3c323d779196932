"""Phrase-level labelled tasks on the course grammar: BIO chunking and span questions.

Both tasks are exact by construction, like those of :mod:`llmcourse.data.labelled`,
whose word classes they reuse. A *noun phrase* is a run of determiners and adjectives
that ends in a noun ("many clever birds"); its *role* is read off the word before it:

- ``SUBJ``, the subject: the phrase that starts the sentence;
- ``PP``, the object of a preposition: after "with", "near" ...;
- ``OBJ``, the object of a verb: after a transitive verb.

**Chunking** (:func:`phrase_tags`, :func:`chunking_examples`) tags every word with BIO
tags: ``B-<role>`` on the first word of a phrase, ``I-<role>`` on its other words,
``O`` outside any phrase. **Span questions** (:func:`qa_examples`): the question is a
noun that occurs once in the sentence, the answer the phrase that ends in it, as the
positions of its first and last words.

>>> phrase_tags("many tables with the clever bird run .".split())
['B-SUBJ', 'I-SUBJ', 'O', 'B-PP', 'I-PP', 'I-PP', 'O', 'O']
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from llmcourse.data.grammar import english_grammar
from llmcourse.data.labelled import NONE, WordClasses, number_tags

ROLES = ("SUBJ", "OBJ", "PP")
BIO_TAGS = ("O", *(f"{prefix}-{role}" for role in ROLES for prefix in ("B", "I")))
"""The chunking tags: ``O``, then ``B-`` and ``I-`` of each role; a tag's id is its index."""


@dataclass(frozen=True)
class QAExample:
    """A span question: which phrase of ``context`` ends in the noun ``question``?

    Attributes:
        question: a noun that occurs exactly once in ``context``.
        context: the words of a grammar sentence.
        start, end: the positions in ``context`` of the answer's first and last words
            (inclusive; ``context[end] == question``).
    """

    question: str
    context: list[str]
    start: int
    end: int


@functools.cache
def _classes() -> tuple[WordClasses, frozenset[str]]:
    grammar = english_grammar()
    prepositions = frozenset(w for _, (w,) in grammar.rules["PREP"])
    return WordClasses.of(grammar), prepositions


def phrase_tags(tokens: Sequence[str]) -> list[str]:
    """The BIO tag (one of :data:`BIO_TAGS`) of every word of a grammar sentence."""
    if isinstance(tokens, str):
        raise TypeError("tokens must be a sequence of words, not a str; split it first")
    classes, prepositions = _classes()
    numbers = number_tags(tokens, classes)
    tags = []
    role = "SUBJ"  # the role of the next phrase, set by the word before it
    inside = False
    for word, number in zip(tokens, numbers, strict=True):
        in_phrase = number != NONE and word not in classes.verbs
        if in_phrase:
            tags.append(f"{'I' if inside else 'B'}-{role}")
            inside = word not in classes.nouns  # a noun ends its phrase
        else:
            tags.append("O")
            inside = False
            if word in prepositions:
                role = "PP"
            elif word in classes.verbs:
                role = "OBJ"
    return tags


def chunking_examples(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """``n`` grammar sentences (``english_grammar().generate(n, seed)``) with their BIO tags."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return [(s.tokens, phrase_tags(s.tokens)) for s in english_grammar().generate(n, seed=seed)]


def qa_examples(n: int, seed: int = 0) -> list[QAExample]:
    """``n`` span questions, each on a grammar sentence with at least one noun that occurs
    once; the sentences come from ``english_grammar()`` and the choice of the noun from a
    ``random.Random(seed)``, so the same seed gives the same examples."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    classes, _ = _classes()
    grammar = english_grammar()
    rng = random.Random(seed)
    examples: list[QAExample] = []
    while len(examples) < n:
        tokens = grammar.sample(rng).tokens
        nouns = [i for i, w in enumerate(tokens) if w in classes.nouns and tokens.count(w) == 1]
        if not nouns:
            continue
        end = rng.choice(nouns)
        tags = phrase_tags(tokens)
        start = end
        while not tags[start].startswith("B-"):
            start -= 1
        examples.append(QAExample(tokens[end], tokens, start, end))
    return examples
