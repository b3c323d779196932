"""Grading tests for the Chapter 5 exercises (solutions/ch05_tokenization.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``: the points of
a parametrized test are shared by its cases, and an answer's points add up to those
announced in the notebook's heading. Corpora are drawn with a fresh seed, from the
grammar's words and from random strings over a few letters (which make many ties), and
the expected values come from ``llmcourse.text.bpe`` (itself checked against Hugging Face
``tokenizers``) or from hand computation.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from llmcourse.data import english_grammar
from llmcourse.grading.expect import expect_type
from llmcourse.text import BPETokenizer, PairCounts, learn_merges, to_byte_level

NOTEBOOK = "ch05_tokenization"

# What each answer must write itself (see llmcourse.grading.offlimits), besides the
# package's functions named like the answers; and the code standing in for pair_counts
# and merge_pair when learn_merges is graded.
PAIR_COUNTS = "llmcourse.text.bpe_training.PairCounts"
OFF_LIMITS = {
    "pair_counts": [PAIR_COUNTS],
    "merge_pair": [PAIR_COUNTS],
    "learn_merges": [PAIR_COUNTS],
    "encode_word": ["llmcourse.text.bpe.BPETokenizer"],
    "byte_level": ["llmcourse.text.bytelevel.to_byte_level"],
}
STAND_INS = {
    "pair_counts": """
def pair_counts(words):
    counts = {}
    for word, freq in words.items():
        for pair in zip(word, word[1:]):
            counts[pair] = counts.get(pair, 0) + freq
    return counts
""",
    "merge_pair": """
def merge_pair(words, pair):
    merged = {}
    for word, freq in words.items():
        out, i = [], 0
        while i < len(word):
            if tuple(word[i : i + 2]) == tuple(pair):
                out, i = out + [pair[0] + pair[1]], i + 2
            else:
                out, i = out + [word[i]], i + 1
        merged[tuple(out)] = merged.get(tuple(out), 0) + freq
    return merged
""",
}
GRAMMAR = english_grammar()
CAR_CAT_RAT = {("t", "h", "e"): 3, ("c", "a", "r"): 1, ("c", "a", "t"): 1, ("r", "a", "t"): 1}


def grammar_words(seed: int, n: int = 40) -> dict[tuple[str, ...], int]:
    """The words of n grammar sentences (lower-case letters and '.'), spelled in characters."""
    counts = Counter(w for s in GRAMMAR.generate(n, seed=seed) for w in s.tokens)
    return {tuple(w): c for w, c in counts.items()}


def random_words(seed: int, letters: str = "abcd") -> dict[tuple[str, ...], int]:
    """Random words over a few letters, with small counts: ties everywhere."""
    rng = random.Random(seed)
    words = {}
    for _ in range(rng.randint(5, 25)):
        word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 9)))
        words[tuple(word)] = rng.randint(1, 4)
    return words


def corpora(seed: int) -> list[dict[tuple[str, ...], int]]:
    return [grammar_words(seed), random_words(seed), random_words(seed + 1, "ab")]


def as_pair_counts(words: dict[tuple[str, ...], int]) -> tuple[PairCounts, list[str]]:
    """The package's incremental pair counts for a corpus of string tokens."""
    tokens = sorted({t for word in words for t in word})
    ids = {t: i for i, t in enumerate(tokens)}
    pairs = PairCounts([[ids[t] for t in word] for word in words], list(words.values()))
    return pairs, tokens


def reference_pair_counts(words: dict[tuple[str, ...], int]) -> dict[tuple[str, str], int]:
    pairs, tokens = as_pair_counts(words)
    return {(tokens[a], tokens[b]): c for (a, b), c in pairs.counts.items()}


def reference_merge(words: dict[tuple[str, ...], int], pair: tuple[str, str]) -> dict:
    pairs, tokens = as_pair_counts(words)
    tokens.append(pair[0] + pair[1])
    pairs.merge((tokens.index(pair[0]), tokens.index(pair[1])), len(tokens) - 1)
    words_after = zip(pairs.words, pairs.freqs, strict=True)
    return {tuple(tokens[i] for i in word): f for word, f in words_after}


def reference_merges(words: dict[tuple[str, ...], int], n: int) -> list[tuple[str, str]]:
    """The package's first n merges (single-byte characters only, so bytes = characters)."""
    merges = learn_merges({"".join(w).encode(): c for w, c in words.items()}, 10**6)
    return [(a.decode(), b.decode()) for a, b in merges[:n]]


def tokens_of(word: str, merges: list[tuple[str, str]]) -> list[str]:
    tokenizer = BPETokenizer([(a.encode(), b.encode()) for a, b in merges])
    return [tokenizer.vocab[i].decode() for i in tokenizer.encode(word)]


def random_text(seed: int, length: int = 40) -> str:
    """Characters from ASCII, control characters, Latin-1, CJK and emoji."""
    rng = random.Random(seed)
    ranges = [(0, 127), (128, 255), (0x4E00, 0x9FFF), (0x1F600, 0x1F64F), (0x3040, 0x30FF)]
    return "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(length))


# ---------------------------------------------------------------- pair_counts


@pytest.mark.exercise(
    "pair_counts",
    points=0.5,
    hint="Count every adjacent pair of every word, weighted by the word's count.",
)
def test_pair_counts_car_cat_rat(student):
    got = student.call("pair_counts", CAR_CAT_RAT)
    expect_type(got, dict, what="pair_counts(corpus)")
    assert got == {
        ("t", "h"): 3, ("h", "e"): 3, ("c", "a"): 2, ("a", "t"): 2, ("a", "r"): 1, ("r", "a"): 1,
    }  # fmt: skip


@pytest.mark.exercise(
    "pair_counts",
    points=1,
    hint="Overlapping pairs count: ('a', 'a', 'a') holds ('a', 'a') twice. Tokens may be "
    "longer than one character, and one-token words have no pairs.",
)
def test_pair_counts_matches_reference(student, fresh_seed):
    rng = random.Random(fresh_seed)
    for words in corpora(fresh_seed):
        got = student.call("pair_counts", words)
        assert got == reference_pair_counts(words), f"corpus seed {fresh_seed}"
        merged = reference_merge(words, rng.choice(sorted(reference_pair_counts(words))))
        assert student.call("pair_counts", merged) == reference_pair_counts(merged)
    assert student.call("pair_counts", {("a", "a", "a", "a"): 2, ("x",): 5}) == {("a", "a"): 6}


@pytest.mark.exercise(
    "pair_counts", points=0.5, hint="Raise ValueError when a count is 0 or negative."
)
@pytest.mark.parametrize("count", [0, -2])
def test_pair_counts_rejects_bad_counts(student, count):
    with pytest.raises(ValueError):
        student.call("pair_counts", {("a", "b"): 1, ("c", "d"): count})


# ---------------------------------------------------------------- merge_pair


@pytest.mark.exercise(
    "merge_pair",
    points=0.5,
    hint="Replace the two tokens by their concatenation; keep the counts.",
)
def test_merge_pair_car_cat_rat(student):
    got = student.call("merge_pair", CAR_CAT_RAT, ("a", "t"))
    expect_type(got, dict, what="merge_pair(corpus, ('a', 't'))")
    assert got == {("t", "h", "e"): 3, ("c", "a", "r"): 1, ("c", "at"): 1, ("r", "at"): 1}
    assert student.call("merge_pair", CAR_CAT_RAT, ("x", "y")) == CAR_CAT_RAT


@pytest.mark.exercise(
    "merge_pair",
    points=0.5,
    hint="Scan from left to right and skip both tokens of a merged pair: ('a', 'a', 'a') "
    "becomes ('aa', 'a').",
)
def test_merge_pair_overlapping(student):
    words = {("a", "a", "a"): 2, ("b", "a", "a", "a", "a", "a"): 1, ("a",): 3}
    assert student.call("merge_pair", words, ("a", "a")) == {
        ("aa", "a"): 2,
        ("b", "aa", "aa", "a"): 1,
        ("a",): 3,
    }


@pytest.mark.exercise(
    "merge_pair",
    points=1,
    hint="Every word that contains the pair changes, every other word stays as it is.",
)
def test_merge_pair_matches_reference(student, fresh_seed):
    rng = random.Random(fresh_seed)
    for words in corpora(fresh_seed):
        for _ in range(3):  # merge three times in a row, as training does
            pairs = sorted(reference_pair_counts(words))
            if not pairs:  # every word is one token: nothing is left to merge
                break
            pair = rng.choice(pairs)
            expected = reference_merge(words, pair)
            assert student.call("merge_pair", words, pair) == expected, (
                f"merging {pair}, corpus seed {fresh_seed}"
            )
            words = expected


# ---------------------------------------------------------------- learn_merges


@pytest.mark.exercise(
    "learn_merges",
    points=1,
    hint="('h', 'e') and ('t', 'h') are tied at 3: the tie goes to the pair whose first "
    "token comes first in the vocabulary (h before t).",
)
def test_learn_merges_car_cat_rat(student):
    got = student.call("learn_merges", CAR_CAT_RAT, 100)
    expect_type(got, list, what="learn_merges(corpus, 100)")
    assert [tuple(m) for m in got] == [
        ("h", "e"), ("t", "he"), ("a", "t"), ("a", "r"), ("c", "at"), ("c", "ar"), ("r", "at"),
    ]  # fmt: skip
    assert [tuple(m) for m in student.call("learn_merges", CAR_CAT_RAT, 2)] == [
        ("h", "e"),
        ("t", "he"),
    ]
    assert student.call("learn_merges", CAR_CAT_RAT, 0) == []


@pytest.mark.exercise(
    "learn_merges",
    points=1.5,
    hint="Merged tokens join the vocabulary after the characters, in the order they were "
    "created; ties compare the first tokens' places, then the second tokens'.",
)
@pytest.mark.parametrize("kind", ["grammar", "ties"])
def test_learn_merges_matches_reference(student, fresh_seed, kind):
    words = grammar_words(fresh_seed) if kind == "grammar" else random_words(fresh_seed, "abc")
    n = 40 if kind == "grammar" else 25
    got = student.call("learn_merges", words, n)
    expect_type(got, list, what=f"learn_merges(corpus, {n})")
    assert [tuple(m) for m in got] == reference_merges(words, n), f"corpus seed {fresh_seed}"


@pytest.mark.exercise(
    "learn_merges",
    points=0.5,
    hint="Stop when no pair is left; raise ValueError for a negative n_merges.",
)
def test_learn_merges_stops_and_validates(student):
    got = student.call("learn_merges", {("a", "b"): 2, ("c",): 1}, 10)
    assert [tuple(m) for m in got] == [("a", "b")]
    with pytest.raises(ValueError):
        student.call("learn_merges", CAR_CAT_RAT, -1)


# ---------------------------------------------------------------- encode_word


@pytest.mark.exercise(
    "encode_word",
    points=1,
    hint="Start from the characters and apply the merges in the order of the list.",
)
def test_encode_word_examples(student):
    merges = [("h", "e"), ("t", "he"), ("a", "t"), ("a", "r"), ("c", "at"), ("c", "ar")]
    cases = {"the": ["the"], "rats": ["r", "at", "s"], "that": ["t", "h", "at"], "": []}
    for word, expected in cases.items():
        got = student.call("encode_word", word, merges)
        expect_type(got, list, what=f"encode_word({word!r}, merges)")
        assert got == expected, word
    # order matters: with ("a", "b") first, "abc" never sees the pair ("b", "c")
    assert student.call("encode_word", "abc", [("a", "b"), ("b", "c")]) == ["ab", "c"]
    assert student.call("encode_word", "abc", [("b", "c"), ("a", "b")]) == ["a", "bc"]


@pytest.mark.exercise(
    "encode_word",
    points=1,
    hint="Words in the corpus become one token after all merges; other words become "
    "pieces; characters that no merge mentions stay single.",
)
def test_encode_word_matches_reference(student, fresh_seed):
    rng = random.Random(fresh_seed)
    words = random_words(fresh_seed, "abcd")
    merges = reference_merges(words, 10**6)
    tests = ["".join(w) for w in words] + [
        "".join(rng.choice("abcde") for _ in range(rng.randint(1, 15))) for _ in range(15)
    ]
    for word in tests:
        got = student.call("encode_word", word, merges)
        assert got == tokens_of(word, merges), f"{word!r}, corpus seed {fresh_seed}"


# ---------------------------------------------------------------- byte_level


@pytest.mark.exercise(
    "byte_level",
    points=0.5,
    hint="Visible Latin-1 bytes spell themselves; the other 68 bytes become chr(256), "
    "chr(257), ... in byte order, so the space is 'Ġ' and a newline 'Ċ'.",
)
def test_byte_level_examples(student):
    assert student.call("byte_level", " the cat\n") == "ĠtheĠcatĊ"
    assert student.call("byte_level", "今天") == "ä»Ĭå¤©"
    # bytes 00, 7f; then c2 a0, c2 ad, c2 ae (two bytes each, c2 is "Â")
    assert student.call("byte_level", "\x00\x7f\xa0\xad\xae") == "ĀġÂłÂŃÂ®"
    assert student.call("from_byte_level", "ä»Ĭå¤©") == "今天"


@pytest.mark.exercise(
    "byte_level",
    points=1,
    hint="Encode the text in UTF-8 first: a character is one to four bytes.",
)
def test_byte_level_matches_reference(student, fresh_seed):
    text = random_text(fresh_seed)
    got = student.call("byte_level", text)
    expect_type(got, str, what="byte_level(text)")
    assert got == to_byte_level(text.encode()), f"text seed {fresh_seed}"
    assert student.call("from_byte_level", got) == text
    cut = to_byte_level(text.encode())[:-1]  # may end inside a character
    expected = text.encode()[:-1].decode("utf-8", errors="replace")
    assert student.call("from_byte_level", cut) == expected


@pytest.mark.exercise(
    "byte_level",
    points=0.5,
    hint="Raise ValueError for a lone surrogate in byte_level and for a character that "
    "spells no byte in from_byte_level.",
)
def test_byte_level_errors(student):
    with pytest.raises(ValueError):
        student.call("byte_level", "ok \ud800")
    with pytest.raises(ValueError):
        student.call("from_byte_level", "Ġ今")
