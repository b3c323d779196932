"""Labelled tasks on the course grammar: subject-verb agreement and number tagging.

The grammar of :func:`llmcourse.data.english_grammar` makes every verb agree in number
with its subject, however many prepositional phrases stand between them. Two
supervised tasks follow from it, both with labels that are exact by construction:

- **Agreement** (sequence classification): given the words of a sentence up to its
  main verb, "the writer of the books near the tables", predict whether the verb is
  singular (*is*) or plural (*are*). The answer sits at the start of the prefix and
  every noun after it (an *attractor* when its number differs from the subject's)
  pulls the wrong way, so the task measures how long a model keeps information
  (Linzen et al., 2016).
- **Number tagging** (sequence labelling): tag every word with the grammatical number
  of the phrase it belongs to. A noun or a verb shows its own number, but a
  determiner or an adjective takes the number of the noun that *follows* it ("the
  big books": all three are plural), so a tagger that reads only to the left must
  guess on those words.

Every example is drawn with the grammar's own rule probabilities, from a seeded
``random.Random``: the same seed gives the same examples.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from llmcourse.data.grammar import Grammar, english_grammar

SG, PL = "sg", "pl"
NONE = "-"  # the tag of a word without grammatical number
TAGS = (NONE, SG, PL)


@dataclass(frozen=True)
class AgreementExample:
    """A prefix that ends right before the main verb, and the number that verb must have.

    Attributes:
        prefix: the words, e.g. ``["the", "writer", "of", "the", "books"]``.
        number: ``"sg"`` or ``"pl"``, the number of the subject (``"sg"`` here).
        attractors: how many nouns after the subject have the other number (1 here).
    """

    prefix: list[str]
    number: str
    attractors: int


@dataclass(frozen=True)
class WordClasses:
    """The grammar's words, grouped by what they say about number."""

    nouns: dict[str, str]  # noun -> "sg" | "pl"
    verbs: dict[str, str]  # verb (including "is" and "are") -> "sg" | "pl"
    modifiers: frozenset[str]  # determiners and adjectives: they take the next noun's number

    @classmethod
    def of(cls, grammar: Grammar) -> WordClasses:
        """Read the classes off the rules of :func:`english_grammar` (or a grammar with its
        nonterminal names)."""

        def words(symbol: str) -> list[str]:
            return [w for _, (w,) in grammar.rules[symbol]]

        nouns = {w: SG for w in words("N_SG")} | {w: PL for w in words("N_PL")}
        verbs = {w: SG for w in words("V_INTR_SG") + words("V_TR_SG") + ["is"]}
        verbs |= {w: PL for w in words("V_INTR_PL") + words("V_TR_PL") + ["are"]}
        determiners = {"the", "a", "some", "every", "many"}
        return cls(nouns, verbs, frozenset(determiners | set(words("ADJ"))))


def number_tags(tokens: Sequence[str], classes: WordClasses | None = None) -> list[str]:
    """The number tag of every word of a grammar sentence: ``"sg"``, ``"pl"`` or ``"-"``.

    Nouns and verbs are tagged with their own number; a determiner or adjective with
    the number of the noun its phrase ends in ("the big books ." -> ``pl pl pl -``); an
    adjective that ends no noun phrase ("is happy") and every other word with ``"-"``.

    >>> number_tags("the writer of the big books is happy .".split())
    ['sg', 'sg', '-', 'pl', 'pl', 'pl', 'sg', '-', '-']
    """
    if isinstance(tokens, str):
        raise TypeError("tokens must be a sequence of words, not a str; split it first")
    classes = classes or _default_classes()
    tags = [NONE] * len(tokens)
    pending = NONE  # the number of the noun that ends the run of modifiers to the right
    for i in range(len(tokens) - 1, -1, -1):
        word = tokens[i]
        if word in classes.nouns:
            tags[i] = pending = classes.nouns[word]
        elif word in classes.modifiers:
            tags[i] = pending
        else:
            tags[i] = classes.verbs.get(word, NONE)
            pending = NONE
    return tags


def tagging_examples(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """``n`` grammar sentences (``english_grammar().generate(n, seed)``) with their number tags."""
    grammar = english_grammar()
    classes = WordClasses.of(grammar)
    return [(s.tokens, number_tags(s.tokens, classes)) for s in grammar.generate(n, seed=seed)]


def agreement_examples(
    n: int, seed: int = 0, min_modifiers: int = 0, max_modifiers: int = 4
) -> list[AgreementExample]:
    """``n`` agreement prefixes: a subject and a chain of prepositional phrases.

    Each prefix is ``the ADJS NOUN`` followed by ``k`` phrases ``PREP NP``, with ``k``
    uniform in ``[min_modifiers, max_modifiers]``; the subject's noun, the adjectives
    and the phrases are drawn with the probabilities of :func:`english_grammar`, so
    every prefix followed by a verb of the right number starts a sentence of the
    grammar ("the writer of the books" + "is happy ."), and with a verb of the other
    number it starts none.

    Raises:
        ValueError: a negative ``n`` or a bad modifier range.
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not 0 <= min_modifiers <= max_modifiers:
        raise ValueError(
            f"need 0 <= min_modifiers <= max_modifiers, got {min_modifiers} and {max_modifiers}"
        )
    grammar = english_grammar()
    classes = WordClasses.of(grammar)
    parts = {symbol: Grammar(grammar.rules, start=symbol) for symbol in ("ADJS", "NOUN", "PP")}
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        adjectives, subject = parts["ADJS"].sample(rng).tokens, parts["NOUN"].sample(rng).tokens
        modifiers = []
        for _ in range(rng.randint(min_modifiers, max_modifiers)):
            modifiers += parts["PP"].sample(rng).tokens
        number = classes.nouns[subject[0]]
        attractors = sum(classes.nouns.get(w, number) != number for w in modifiers)
        examples.append(
            AgreementExample(["the", *adjectives, *subject, *modifiers], number, attractors)
        )
    return examples


@functools.cache
def _default_classes() -> WordClasses:
    return WordClasses.of(english_grammar())
