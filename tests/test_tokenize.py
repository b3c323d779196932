"""Tests for llmcourse.text.words: word, sentence and character tokenization and Vocab."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llmcourse.text import (
    BOS,
    EOS,
    PAD,
    UNK,
    Vocab,
    char_tokenize,
    split_sentences,
    tokenized_sentences,
    word_tokenize,
)

# ---------------------------------------------------------------- word_tokenize


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "Students opened their books, didn't they?",
            ["students", "opened", "their", "books", ",", "didn't", "they", "?"],
        ),
        ("HELLO World", ["hello", "world"]),
        ("It's 3.14, not 42!", ["it's", "3", ".", "14", ",", "not", "42", "!"]),
        ("abc123def", ["abc", "123", "def"]),
        ("the students' books", ["the", "students", "'", "books"]),
        ("rock'n'roll", ["rock'n", "'", "roll"]),
        ("'quoted'", ["'", "quoted", "'"]),
        ("e-mail (see x.y)", ["e", "-", "mail", "(", "see", "x", ".", "y", ")"]),
        ("a...b", ["a", ".", ".", ".", "b"]),
        ("  tabs\tand\nnewlines  ", ["tabs", "and", "newlines"]),
        ("", []),
        (" \n\t ", []),
    ],
)
def test_word_tokenize_examples(text, expected):
    assert word_tokenize(text) == expected


@pytest.mark.parametrize(
    "bad, name", [(None, "NoneType"), (b"bytes", "bytes"), (["a"], "list"), (3, "int")]
)
def test_word_tokenize_rejects_non_strings(bad, name):
    with pytest.raises(TypeError, match=f"text must be a str, got {name}"):
        word_tokenize(bad)


@given(st.text())
def test_word_tokenize_never_returns_whitespace_and_loses_nothing_else(text):
    tokens = word_tokenize(text)
    for t in tokens:
        assert t != ""
        assert not any(ch.isspace() for ch in t)
    # every non-space character of the lower-cased text is in exactly one token, in order
    assert "".join(tokens) == "".join(text.lower().split())


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,'!?-"))
def test_word_tokenize_token_shapes(text):
    shape = re.compile(r"[a-z]+('[a-z]+)?|[0-9]+|[^\sa-z0-9]")
    for t in word_tokenize(text):
        assert shape.fullmatch(t), t
        assert t == t.lower()


# -------------------------------------------------------------- split_sentences


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "Hello there. How are you? I am 3 years old! ok. Fine.",
            ["Hello there.", "How are you?", "I am 3 years old! ok.", "Fine."],
        ),
        ("See e.g. the docs. Then stop.", ["See e.g. the docs.", "Then stop."]),
        ("Version 3.11 is new. Yes.", ["Version 3.11 is new.", "Yes."]),
        (
            'He said hi. "Bye" is short. (Yes, really.) Wait! 42 is.',
            ["He said hi.", '"Bye" is short.', "(Yes, really.) Wait!", "42 is."],
        ),
        # the end mark must be right before the space: a closing quote or bracket hides it
        ('"Bye." (Yes.) Then.', ['"Bye." (Yes.) Then.']),
        ("Line one.\nLine two.", ["Line one.", "Line two."]),
        ("  Leading and trailing.  ", ["Leading and trailing."]),
        ("no end mark", ["no end mark"]),
        ("", []),
        ("   ", []),
    ],
)
def test_split_sentences_examples(text, expected):
    assert split_sentences(text) == expected


def test_split_sentences_rejects_non_strings():
    with pytest.raises(TypeError, match="text must be a str, got list"):
        split_sentences(["A. B."])


# ---------------------------------------------------------- tokenized_sentences


def test_tokenized_sentences():
    paragraphs = ["Hello there. How are you?", "", "   ", "One."]
    assert tokenized_sentences(paragraphs) == [
        ["hello", "there", "."],
        ["how", "are", "you", "?"],
        ["one", "."],
    ]


def test_tokenized_sentences_accepts_a_generator_and_empty_input():
    assert tokenized_sentences(p for p in ["A b. C d."]) == [["a", "b", "."], ["c", "d", "."]]
    assert tokenized_sentences([]) == []


def test_tokenized_sentences_on_real_prose_are_nonempty_word_lists():
    from llmcourse.data import python_docs

    sentences = tokenized_sentences(python_docs().validation)
    assert len(sentences) > 100
    assert all(s and all(isinstance(t, str) and t.strip() == t != "" for t in s) for s in sentences)


# ----------------------------------------------------------------- char_tokenize


@given(st.text())
def test_char_tokenize_round_trip(text):
    chars = char_tokenize(text)
    assert "".join(chars) == text
    assert len(chars) == len(text)
    assert all(len(c) == 1 for c in chars)


def test_char_tokenize_keeps_whitespace():
    assert char_tokenize("a b\n") == ["a", " ", "b", "\n"]


def test_char_tokenize_rejects_non_strings():
    with pytest.raises(TypeError, match="text must be a str, got list"):
        char_tokenize(["a"])


# ------------------------------------------------------------------------ Vocab


def test_vocab_specials_first_then_count_then_alphabetical():
    # counts: b 3, a 2, c 1, d 1 -> b, a, then the tie c/d alphabetically
    vocab = Vocab("d b a c b a b".split())
    assert vocab.itos == [UNK, BOS, EOS, "b", "a", "c", "d"]
    assert vocab.stoi == {t: i for i, t in enumerate(vocab.itos)}
    assert len(vocab) == 7
    assert vocab.unk_id == 0


def test_vocab_min_count():
    vocab = Vocab("d b a c b a b".split(), min_count=2)
    assert vocab.itos == [UNK, BOS, EOS, "b", "a"]
    assert "c" not in vocab and "b" in vocab
    assert vocab.encode(["c", "b"]) == [vocab.unk_id, 3]
    assert vocab.lookup(["c", "b", "zzz"]) == [UNK, "b", UNK]
    assert len(Vocab("d b a c b a b".split(), min_count=4)) == 3  # specials only


def test_vocab_custom_specials():
    vocab = Vocab(["x", "y", "x"], specials=(PAD, UNK))
    assert vocab.itos == [PAD, UNK, "x", "y"]
    assert vocab.unk_id == 1
    assert vocab.encode(["x", "nope", PAD]) == [2, 1, 0]


def test_vocab_specials_are_not_duplicated():
    # a special that also occurs in the data keeps its special id; repeated specials are merged
    vocab = Vocab([BOS, "x", BOS, BOS, UNK], specials=(UNK, UNK, BOS))
    assert vocab.itos == [UNK, BOS, "x"]


def test_vocab_accepts_a_generator():
    vocab = Vocab(w for w in "a b b".split())
    assert vocab.itos == [UNK, BOS, EOS, "b", "a"]


def test_vocab_encode_decode():
    vocab = Vocab("the cat sat on the mat".split())
    ids = vocab.encode(["the", "dog", "sat"])
    assert ids == [vocab.stoi["the"], vocab.unk_id, vocab.stoi["sat"]]
    assert vocab.decode(ids) == ["the", UNK, "sat"]
    assert vocab.decode([]) == [] and vocab.encode([]) == []


def test_vocab_decode_accepts_numpy_and_torch_integers():
    vocab = Vocab("a b c".split())
    assert vocab.decode(np.array([3, 4], dtype=np.int64)) == ["a", "b"]
    assert vocab.decode(torch.tensor([5, 0])) == ["c", UNK]


@pytest.mark.parametrize("bad_id", [-1, 7, 100])
def test_vocab_decode_out_of_range_raises(bad_id):
    vocab = Vocab("d b a c b a b".split())  # size 7
    with pytest.raises(IndexError, match=f"id {bad_id} is outside the vocabulary of size 7"):
        vocab.decode([3, bad_id])


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", None, True])
def test_vocab_invalid_min_count_raises(bad):
    with pytest.raises(ValueError, match="min_count must be an integer >= 1"):
        Vocab(["a"], min_count=bad)


def test_vocab_specials_must_include_unk():
    with pytest.raises(ValueError, match="specials must include the unknown token"):
        Vocab(["a"], specials=(BOS, EOS))


words = st.text(alphabet="abcde", min_size=1, max_size=3)


@given(st.lists(words, max_size=40), st.integers(1, 3))
def test_vocab_properties(tokens, min_count):
    vocab = Vocab(tokens, min_count=min_count)
    counts = Counter(tokens)
    kept = vocab.itos[3:]
    assert vocab.itos[:3] == [UNK, BOS, EOS]
    assert set(kept) == {t for t, c in counts.items() if c >= min_count}
    # decreasing count, ties alphabetical
    keys = [(-counts[t], t) for t in kept]
    assert keys == sorted(keys)
    # encode/decode round trip for known tokens, <unk> for the others
    assert vocab.decode(vocab.encode(kept)) == kept
    assert vocab.decode(vocab.encode(tokens)) == vocab.lookup(tokens)
    assert all(0 <= i < len(vocab) for i in vocab.encode(tokens + ["zzzz"]))
    assert vocab.encode(["zzzz"]) == [vocab.unk_id]


def test_word_tokenize_keeps_letters_of_any_alphabet_together():
    assert word_tokenize("Café déjà-vu 你好") == ["café", "déjà", "-", "vu", "你好"]
