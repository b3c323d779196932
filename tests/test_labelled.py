"""The labelled grammar tasks: number tags by hand, agreement prefixes checked by the grammar."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from llmcourse.data import english_grammar
from llmcourse.data.labelled import (
    NONE,
    PL,
    SG,
    TAGS,
    WordClasses,
    agreement_examples,
    number_tags,
    tagging_examples,
)

GRAMMAR = english_grammar()
CLASSES = WordClasses.of(GRAMMAR)
PREPOSITIONS = {"of", "near", "behind", "with"}


def test_word_classes_cover_the_grammar():
    assert len(CLASSES.nouns) == 20 and Counter(CLASSES.nouns.values()) == {SG: 10, PL: 10}
    assert len(CLASSES.verbs) == 20 and Counter(CLASSES.verbs.values()) == {SG: 10, PL: 10}
    assert CLASSES.verbs["is"] == SG and CLASSES.verbs["are"] == PL
    assert CLASSES.nouns["children"] == PL and CLASSES.verbs["sleeps"] == SG
    assert {"the", "a", "some", "every", "many", "big", "clever"} <= CLASSES.modifiers
    classified = set(CLASSES.nouns) | set(CLASSES.verbs) | CLASSES.modifiers
    assert set(GRAMMAR.words) - classified == PREPOSITIONS | {"that", ".", "quietly", "today"}


@pytest.mark.parametrize(
    ("sentence", "tags"),
    [
        ("the writer of the big books is happy .", "sg sg - pl pl pl sg - -"),
        ("many cats that see a dog sleep quietly .", "pl pl - pl sg sg pl - -"),
        ("every small red bird laughs .", "sg sg sg sg sg -"),
        ("the children near some tables are clever .", "pl pl - pl pl pl - -"),
    ],
)
def test_number_tags_by_hand(sentence, tags):
    assert number_tags(sentence.split()) == tags.split()


def test_number_tags_rejects_a_string():
    with pytest.raises(TypeError, match="split it first"):
        number_tags("the cat sleeps .")


def test_tagging_examples_are_repeatable_and_consistent():
    examples = tagging_examples(300, seed=5)
    assert examples == tagging_examples(300, seed=5) != tagging_examples(300, seed=6)
    assert [words for words, _ in examples] == [s.tokens for s in GRAMMAR.generate(300, seed=5)]
    counts = Counter()
    for words, tags in examples:
        assert len(words) == len(tags) and set(tags) <= set(TAGS)
        counts.update(tags)
        # the grammar's agreement: the subject (first noun) and every verb of the main
        # clause or of a relative clause on the subject share a number; the first verb
        # after the subject belongs to one of them
        first_noun = next(t for w, t in zip(words, tags, strict=True) if w in CLASSES.nouns)
        first_verb = next(t for w, t in zip(words, tags, strict=True) if w in CLASSES.verbs)
        assert first_noun == first_verb, words
        assert tags[-1] == NONE and words[-1] == "."
    assert all(counts[t] > 100 for t in TAGS)


def test_agreement_prefixes_start_grammatical_sentences_only_with_the_right_verb():
    for example in agreement_examples(300, seed=7, max_modifiers=5):
        right, wrong = ("is", "are") if example.number == SG else ("are", "is")
        assert GRAMMAR.log_prob([*example.prefix, right, "happy", "."]) > -math.inf
        assert GRAMMAR.log_prob([*example.prefix, wrong, "happy", "."]) == -math.inf


def test_agreement_examples_follow_their_arguments():
    examples = agreement_examples(400, seed=8, min_modifiers=2, max_modifiers=4)
    assert examples == agreement_examples(400, seed=8, min_modifiers=2, max_modifiers=4)
    phrases = Counter(sum(w in PREPOSITIONS for w in e.prefix) for e in examples)
    assert set(phrases) == {2, 3, 4}
    assert 150 < sum(e.number == SG for e in examples) < 250  # subjects are half singular
    for e in examples:
        assert e.prefix[0] == "the"
        nouns = [CLASSES.nouns[w] for w in e.prefix if w in CLASSES.nouns]
        assert nouns[0] == e.number
        assert e.attractors == sum(n != e.number for n in nouns[1:])
    assert max(e.attractors for e in examples) >= 3
    bare = agreement_examples(50, seed=9, max_modifiers=0)
    assert all(not PREPOSITIONS & set(e.prefix) and e.attractors == 0 for e in bare)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n=-1), "n must be a non-negative integer"),
        (dict(n=5, min_modifiers=3, max_modifiers=2), "need 0 <= min_modifiers <= max_modifiers"),
        (dict(n=5, min_modifiers=-1), "need 0 <= min_modifiers"),
    ],
)
def test_agreement_examples_validate(kwargs, message):
    with pytest.raises(ValueError, match=message):
        agreement_examples(**kwargs)
