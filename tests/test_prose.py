"""Tests for llmcourse.data.prose: the Python documentation as an offline prose corpus."""

from __future__ import annotations

import re
from collections import Counter
from pydoc_data.topics import topics

import pytest

from llmcourse.data import Split, python_docs
from llmcourse.data.prose import _is_prose, prose_paragraphs


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    return prose_paragraphs()


@pytest.fixture(scope="module")
def split() -> Split:
    return python_docs()


def test_python_docs_is_deterministic(split):
    again = python_docs()
    assert again == split
    assert again.train == split.train and again.validation == split.validation


def test_prose_paragraphs_is_deterministic(paragraphs):
    assert prose_paragraphs() == paragraphs


def test_corpus_has_the_documented_size(paragraphs):
    # The module docstring speaks of about 53,000 words; the exact figure depends on the
    # Python version, so only the order of magnitude is checked.
    n_words = sum(len(p.split()) for p in paragraphs)
    assert 40_000 < n_words < 70_000
    assert len(paragraphs) > 1000


@pytest.mark.parametrize("every", [2, 3, 10, 25])
def test_split_follows_the_documented_rule(paragraphs, every):
    s = python_docs(validation_every=every)
    # paragraph i goes to validation iff i % every == every - 1
    assert s.validation == paragraphs[every - 1 :: every]
    assert s.train == [p for i, p in enumerate(paragraphs) if i % every != every - 1]


def test_split_is_a_partition_of_the_paragraphs(paragraphs, split):
    assert len(split.train) + len(split.validation) == len(paragraphs)
    assert Counter(split.train) + Counter(split.validation) == Counter(paragraphs)


def test_default_split_is_about_90_10(paragraphs, split):
    assert len(split.validation) == len(paragraphs) // 10
    fraction = len(split.validation) / len(paragraphs)
    assert 0.09 < fraction < 0.11
    assert len(split.train) > 8 * len(split.validation)


def test_train_and_validation_positions_are_disjoint(paragraphs, split):
    # Which positions of prose_paragraphs() end up in each set: no position is in both.
    val_positions = set(range(9, len(paragraphs), 10))
    train_positions = set(range(len(paragraphs))) - val_positions
    assert [paragraphs[i] for i in sorted(val_positions)] == split.validation
    assert [paragraphs[i] for i in sorted(train_positions)] == split.train


def test_train_and_validation_texts_are_disjoint(split):
    # pydoc topics share paragraphs ('assignment' and 'augassign'); a shared one must not
    # land in both sets, or validation text would leak into training.
    assert set(split.train).isdisjoint(split.validation)


def test_paragraphs_are_distinct(paragraphs):
    assert len(set(paragraphs)) == len(paragraphs)


@pytest.mark.parametrize("bad", [1, 0, -10, 2.5, 10.0, "10", None, True])
def test_validation_every_must_be_an_integer_at_least_2(bad):
    with pytest.raises(ValueError, match="validation_every must be an integer >= 2"):
        python_docs(validation_every=bad)


def test_paragraphs_are_single_lines_with_collapsed_whitespace(split):
    for p in split.train + split.validation:
        assert "\n" not in p and "\t" not in p
        assert p == p.strip()
        assert "  " not in p
        assert p == " ".join(p.split())


def test_raw_topics_do_contain_code_grammar_and_headings():
    # so that the next test is not vacuous: the filter has something to remove
    raw = "\n".join(topics.values())
    assert raw.count(">>>") > 50
    assert raw.count("::=") > 50
    assert len(re.findall(r"(?m)^[*=\-~^]{3,}\s*$", raw)) > 50


def test_paragraphs_contain_no_code_grammar_or_headings(split):
    # section headings are underlined with a run of *, =, -, ~ or ^ (pydoc topics have ~200)
    underline = re.compile(r"^[*=\-~^]{3,}$")
    for p in split.train + split.validation:
        assert ">>>" not in p
        assert "::=" not in p
        assert len(p.split()) >= 8
        assert not any(underline.match(w) for w in p.split())


def test_paragraphs_are_mostly_plain_words(split):
    # the 75% plain-word filter, checked on the output with an independent, looser test:
    # most words consist of letters (possibly with surrounding punctuation)
    lettered = re.compile(r"[A-Za-z]")
    for p in split.train + split.validation:
        words = p.split()
        assert sum(bool(lettered.search(w)) for w in words) >= 0.75 * len(words)


@pytest.mark.parametrize(
    "block, expected",
    [
        ("Assignment statements are used to (re)bind names to values and to modify.", True),
        ("Too short to be a paragraph here.", False),
        (">>> x = [1, 2, 3]\n>>> print(x) and more words to make it long enough", False),
        ('assignment_stmt ::= (target_list "=")+ (starred_expression | yield_expression)', False),
        ("The assignment statement and all the things it can do\n*************************", False),
        ("x = f(a, b) + g[c] * h{d} - k(e) / m(f) ** n(g) for i in range(10)", False),
    ],
)
def test_is_prose_examples(block, expected):
    assert _is_prose(block) is expected
