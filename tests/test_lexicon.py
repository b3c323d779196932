"""Tests for llmcourse.data.lexicon: the Zipfian lexical grammar of the scaling sweep."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from llmcourse.data.lexicon import invented_words, lexical_grammar, zipf_weights


def zipf_entropy(count: int, exponent: float) -> float:
    raw = [rank**-exponent for rank in range(1, count + 1)]
    total = sum(raw)
    return -sum(r / total * math.log(r / total) for r in raw)


def test_zipf_weights_sum_to_one_and_follow_the_power_law():
    w = zipf_weights(100, 1.1)
    assert sum(w) == pytest.approx(1.0)
    assert w[0] / w[9] == pytest.approx(10**1.1)
    assert all(a > b for a, b in zip(w, w[1:], strict=False))


def test_invented_words_are_distinct_and_seeded():
    a = invented_words(300, random.Random(3))
    assert len(set(a)) == 300
    assert a == invented_words(300, random.Random(3))
    assert all(4 <= len(word) <= 6 for word in a)


def test_every_sentence_has_the_shape_the_subject_verb_the_object():
    grammar = lexical_grammar(n_nouns=20, n_verbs=10, verbs_per_noun=4, objects_per_verb=5)
    for sample in grammar.generate(200, seed=1):
        assert len(sample.tokens) == 6
        assert sample.tokens[0] == sample.tokens[3] == "the"
        assert sample.tokens[-1] == "."
        assert grammar.log_prob(sample.tokens) == pytest.approx(sample.log_prob)


def test_each_word_has_its_own_successors():
    grammar = lexical_grammar(n_nouns=30, n_verbs=40, verbs_per_noun=6, objects_per_verb=3)
    verbs_of: dict[str, set[str]] = {}
    objects_of: dict[str, set[str]] = {}
    for s in grammar.generate(5000, seed=0):
        verbs_of.setdefault(s.tokens[1], set()).add(s.tokens[2])
        objects_of.setdefault(s.tokens[2], set()).add(s.tokens[4])
    assert max(len(v) for v in verbs_of.values()) == 6
    assert max(len(o) for o in objects_of.values()) == 3
    assert len({frozenset(v) for v in verbs_of.values() if len(v) == 6}) > 1  # not shared


@pytest.mark.parametrize("sizes", [(256, 256, 32, 32), (50, 20, 8, 10)])
def test_entropy_is_the_sum_of_three_zipf_entropies(sizes):
    """Subject, verb given subject, object given verb: each a Zipf choice."""
    n_nouns, n_verbs, per_noun, per_verb = sizes
    grammar = lexical_grammar(n_nouns, n_verbs, per_noun, per_verb, exponent=1.1)
    expected = zipf_entropy(n_nouns, 1.1) + zipf_entropy(per_noun, 1.1)
    expected += zipf_entropy(per_verb, 1.1)
    assert grammar.entropy() == pytest.approx(expected)
    assert grammar.entropy_per_token() == pytest.approx(expected / 7)


def test_subject_frequencies_follow_zipf():
    grammar = lexical_grammar(n_nouns=50, n_verbs=10, verbs_per_noun=2, objects_per_verb=2)
    counts = Counter(s.tokens[1] for s in grammar.generate(20_000, seed=2))
    ranked = [c for _, c in counts.most_common()]
    assert ranked[0] / 20_000 == pytest.approx(zipf_weights(50, 1.1)[0], abs=0.02)


def test_the_seed_changes_the_words_and_is_reproducible():
    a, b = lexical_grammar(seed=0), lexical_grammar(seed=1)
    assert a.generate(5, seed=0) == lexical_grammar(seed=0).generate(5, seed=0)
    assert a.generate(5, seed=0) != b.generate(5, seed=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_nouns": 1}, "n_nouns"),
        ({"verbs_per_noun": 0}, "verbs_per_noun"),
        ({"n_verbs": 4, "verbs_per_noun": 5}, "more words than there are"),
        ({"exponent": 0.0}, "exponent"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lexical_grammar(**kwargs)
