"""Unit tests for llmcourse.text.bpe and llmcourse.text.pretokenize.

The expected merges of the seed's ``the car / the cat / the rat`` example are worked out
by hand in the comments. The incremental pair counts are checked against a recount
from scratch after every merge, and the whole trainer against a naive one that recounts
the corpus at every step. Parity with Hugging Face ``tokenizers`` (training and
encoding) is in ``test_bpe_tokenizers_parity.py``.
"""

from __future__ import annotations

import itertools
import json
import random
import tracemalloc
from collections import Counter
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.data import python_docs
from llmcourse.text import (
    BPETokenizer,
    PairCounts,
    count_words,
    from_byte_level,
    learn_merges,
    pretokenize,
    split_specials,
    stream_cut,
    to_byte_level,
)
from llmcourse.text.bytelevel import BYTE_ORDER, BYTE_TO_CHAR

EOT = "<|endoftext|>"
CAR_CAT_RAT = "the car the cat the rat"
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)  # any str but surrogates


def tid(token: str) -> int:
    """The id of a single-byte token given by its byte-level character."""
    return BYTE_ORDER.index(from_byte_level(token)[0])


@pytest.fixture(scope="module")
def prose():
    return python_docs()


@pytest.fixture(scope="module")
def prose_tokenizer(prose):
    return BPETokenizer.train(prose.train, vocab_size=600, specials=[EOT])


# ------------------------------------------------------------ byte-level alphabet


def test_byte_alphabet_is_gpt2s():
    assert len(set(BYTE_TO_CHAR)) == 256 and all(c.isprintable() for c in BYTE_TO_CHAR)
    assert BYTE_TO_CHAR[ord("a")] == "a" and BYTE_TO_CHAR[ord("é".encode("latin-1"))] == "é"
    assert BYTE_TO_CHAR[0] == "Ā" and BYTE_TO_CHAR[ord(" ")] == "Ġ"
    assert BYTE_TO_CHAR[ord("\n")] == "Ċ" and BYTE_TO_CHAR[0xAD] == "Ń"  # soft hyphen: last
    # ids follow GPT-2's vocabulary: "!" is 0, "a" is 64, "Ġ" (space) is 220, "Ċ" 198
    assert BYTE_ORDER[0] == ord("!") and tid("a") == 64 and tid("Ġ") == 220 and tid("Ċ") == 198
    assert sorted(BYTE_ORDER) == list(range(256))


def test_byte_level_round_trip_and_errors():
    assert to_byte_level(b" the") == "Ġthe"
    assert to_byte_level("今天".encode()) == "ä»Ĭå¤©"  # e4 bb 8a e5 a4 a9
    assert from_byte_level("ä»Ĭå¤©").decode() == "今天"
    assert from_byte_level(to_byte_level(bytes(range(256)))) == bytes(range(256))
    with pytest.raises(ValueError, match="'今' is not a byte-level character"):
        from_byte_level("a今")
    with pytest.raises(TypeError, match="data must be bytes"):
        to_byte_level("text")


# ---------------------------------------------------------------- pre-tokenization


@pytest.mark.parametrize(
    "text, expected",
    [
        ("What is machine learning?", ["What", " is", " machine", " learning", "?"]),
        ("什么是机器学习?", ["什么是机器学习", "?"]),
        ("機械学習とは何ですか?", ["機械学習とは何ですか", "?"]),
        ("GPT-4 don't", ["GPT", "-", "4", " don", "'t"]),
        (
            "x = 3.14  # pi\n\nend",
            ["x", " =", " 3", ".", "14", " ", " #", " pi", "\n", "\n", "end"],
        ),
        ("Hello 🙂🙂 ok", ["Hello", " 🙂🙂", " ok"]),
        ("", []),
    ],
)
def test_pretokenize_examples(text, expected):
    assert pretokenize(text) == expected


@settings(max_examples=100, deadline=None)
@given(TEXT)
def test_pretokens_concatenate_to_the_text(text):
    assert "".join(pretokenize(text)) == text


def test_split_specials_is_leftmost_longest():
    assert split_specials("a<x><y>b<x>", ["<x>", "<x><y>"]) == [
        ("a", False),
        ("<x><y>", True),
        ("b", False),
        ("<x>", True),
    ]
    assert split_specials("<x><x>", ["<x>"]) == [("<x>", True), ("<x>", True)]
    assert split_specials("plain", []) == [("plain", False)]
    assert split_specials("", [EOT]) == []


@pytest.mark.parametrize(
    "specials, error, message",
    [
        (EOT, TypeError, "not the str"),
        (["", "a"], ValueError, "non-empty str"),
        ([EOT, EOT], ValueError, "distinct"),
        ([3], ValueError, "non-empty str"),
    ],
)
def test_split_specials_rejects_bad_specials(specials, error, message):
    with pytest.raises(error, match=message):
        split_specials("text", specials)


# ------------------------------------------------ the car / the cat / the rat, by hand


def test_car_cat_rat_pair_counts():
    # pre-tokens: "the", " car", " the", " cat", " the", " rat" (the space joins the word)
    words = count_words([CAR_CAT_RAT])
    assert words == {b"the": 1, b" the": 2, b" car": 1, b" cat": 1, b" rat": 1}
    pairs = PairCounts([[tid(c) for c in to_byte_level(w)] for w in words], list(words.values()))
    named = {
        (BYTE_TO_CHAR[BYTE_ORDER[a]], BYTE_TO_CHAR[BYTE_ORDER[b]]): c
        for (a, b), c in pairs.counts.items()
    }
    assert named == {
        ("t", "h"): 3, ("h", "e"): 3, ("Ġ", "t"): 2, ("Ġ", "c"): 2, ("c", "a"): 2,
        ("a", "t"): 2, ("a", "r"): 1, ("Ġ", "r"): 1, ("r", "a"): 1,
    }  # fmt: skip


def test_car_cat_rat_merges_by_hand():
    # Ids: letters in alphabetical order (a=64, c=66, e=68, h=71, r=81, t=83), Ġ=220, then
    # the merged tokens from 256 on. Ties go to the smallest (left id, right id).
    #  1. t h: 3 and h e: 3 tie; (h, e) = (71, 68) < (83, 71)                  -> he (256)
    #  2. t he: 3                                                              -> the (257)
    #  3. Ġ the, Ġ c, c a, a t: all 2; (a, t) = (64, 83) is the smallest         -> at (258)
    #     words now: the, Ġ the x2, Ġ c a r, Ġ c at, Ġ r at
    #  4. Ġ c: 2 and Ġ the: 2; c = 66 < the = 257                                -> Ġc (259)
    #  5. Ġ the: 2                                                             -> Ġthe (260)
    #  6. all pairs 1: Ġc a, a r, Ġc at, Ġ r, r at; (a, r) = (64, 81) smallest   -> ar (261)
    #  7. Ġc ar, Ġc at, Ġ r, r at; (r, at) = (81, 258) smallest                 -> rat (262)
    #  8. Ġ rat (220, 262) < Ġc ... (259, ...)                                  -> Ġrat (263)
    #  9. Ġc at (259, 258) < Ġc ar (259, 261)                                  -> Ġcat (264)
    # 10. Ġc ar                                                                -> Ġcar (265)
    tok = BPETokenizer.train([CAR_CAT_RAT], vocab_size=1000)
    merges = [f"{to_byte_level(a)} {to_byte_level(b)}" for a, b in tok.merges]
    assert merges == [
        "h e", "t he", "a t", "Ġ c", "Ġ the", "a r", "r at", "Ġ rat", "Ġc at", "Ġc ar",
    ]  # fmt: skip
    assert len(tok) == 256 + 10  # training stopped: every word is a single token
    assert [tok.token(i) for i in range(256, 266)] == [
        "he", "the", "at", "Ġc", "Ġthe", "ar", "rat", "Ġrat", "Ġcat", "Ġcar",
    ]  # fmt: skip
    assert tok.encode(CAR_CAT_RAT) == [257, 265, 260, 264, 260, 263]


def test_vocab_size_counts_bytes_merges_and_specials():
    tok = BPETokenizer.train([CAR_CAT_RAT], vocab_size=256 + 4 + 1, specials=[EOT])
    assert len(tok) == 261 and len(tok.merges) == 4
    assert [tok.token(i) for i in tok.encode("the cat")] == ["the", "Ġc", "at"]
    assert tok.specials == {EOT: 260} and tok.token(260) == EOT


def test_merges_of_a_smaller_vocabulary_are_a_prefix(prose):
    small = BPETokenizer.train(prose.train[:200], vocab_size=300)
    large = BPETokenizer.train(prose.train[:200], vocab_size=400)
    assert len(small.merges) == 44 and large.merges[:44] == small.merges


def test_training_does_not_depend_on_the_order_of_the_texts(prose):
    texts = prose.train[:300]
    shuffled = random.Random(0).sample(texts, len(texts))
    assert BPETokenizer.train(texts, 500).merges == BPETokenizer.train(shuffled, 500).merges


# ------------------------------------------- incremental counts equal a recount


def recount(words: list[list[int]], freqs: list[int]) -> Counter:
    counts = Counter()
    for word, freq in zip(words, freqs, strict=True):
        for pair in pairwise(word):
            counts[pair] += freq
    return counts


def small_corpus() -> Counter:
    words = count_words(python_docs().train[:15])
    rng = random.Random(0)  # add repeats such as "aaaa" and many ties
    for _ in range(40):
        words["".join(rng.choice("aab") for _ in range(rng.randint(2, 9))).encode()] += 1
    return words


def test_incremental_pair_counts_equal_a_recount_after_every_merge():
    words = small_corpus()
    state = PairCounts([[BYTE_ORDER.index(b) for b in w] for w in words], list(words.values()))
    assert state.counts == recount(state.words, state.freqs)
    new, merges = 256, 0
    while (best := state.most_frequent()) is not None:
        counts = recount(state.words, state.freqs)
        assert best == min(counts, key=lambda pair: (-counts[pair], pair))
        state.merge(best, new)
        new += 1
        merges += 1
        assert state.counts == recount(state.words, state.freqs), f"after merge {merges}"
        for w, word in enumerate(state.words):  # the index lists every word with a pair
            for pair in pairwise(word):
                assert w in state.where[pair]
    assert merges > 500 and all(len(word) == 1 for word in state.words)


def naive_learn_merges(word_counts: dict[bytes, int], vocab_size: int) -> list[tuple[bytes, bytes]]:
    """Recount every pair of the whole corpus before every merge."""
    tokens = [bytes([b]) for b in BYTE_ORDER]
    words = [[BYTE_ORDER.index(b) for b in w] for w in word_counts]
    freqs, merges = list(word_counts.values()), []
    while len(tokens) < vocab_size:
        counts = recount(words, freqs)
        if not counts:
            break
        a, b = min(counts, key=lambda pair: (-counts[pair], pair))
        tokens.append(tokens[a] + tokens[b])
        merges.append((tokens[a], tokens[b]))
        for w, word in enumerate(words):
            out, i = [], 0
            while i < len(word):
                if word[i : i + 2] == [a, b]:
                    out.append(len(tokens) - 1)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            words[w] = out
    return merges


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text("abcd é", min_size=1, max_size=12).map(str.encode),
        st.integers(1, 5),
        max_size=12,
    ),
    st.integers(256, 320),
)
def test_learn_merges_equals_the_naive_trainer(word_counts, vocab_size):
    assert learn_merges(word_counts, vocab_size) == naive_learn_merges(word_counts, vocab_size)


def test_learn_merges_equals_the_naive_trainer_on_prose():
    words = small_corpus()
    assert learn_merges(words, 700) == naive_learn_merges(words, 700)


# --------------------------------------------------------- encoding and decoding


def replay_merges(tok: BPETokenizer, word: str) -> list[bytes]:
    """Encode one pre-token the textbook way: apply every merge in order."""
    symbols = [bytes([b]) for b in word.encode()]
    for a, b in tok.merges:
        out, i = [], 0
        while i < len(symbols):
            if symbols[i : i + 2] == [a, b]:
                out.append(a + b)
                i += 2
            else:
                out.append(symbols[i])
                i += 1
        symbols = out
    return symbols


def test_encoding_equals_replaying_the_merges_in_order(prose, prose_tokenizer):
    words = sorted({w for p in prose.validation[:30] for w in pretokenize(p)})
    assert len(words) > 300
    for word in words:
        got = [prose_tokenizer.vocab[i] for i in prose_tokenizer.encode(word)]
        assert got == replay_merges(prose_tokenizer, word), word


def test_encode_uses_the_lowest_rank_first_when_two_merges_spell_the_same_token():
    # "abc" can be made as ab + c (rank 2) or a + bc (rank 3): one token, id 258.
    tok = BPETokenizer([(b"a", b"b"), (b"b", b"c"), (b"ab", b"c"), (b"a", b"bc")])
    assert len(tok) == 259 and [tok.token(i) for i in (256, 257, 258)] == ["ab", "bc", "abc"]
    assert tok.encode("abc") == [258]  # a b c -> ab c (rank 0) -> abc (rank 2)
    assert [tok.token(i) for i in tok.encode("bcab")] == ["bc", "ab"]
    # "zabc": z ab c -> z abc;  "bbc": b bc (rank 1; rank 0 is absent)
    assert [tok.token(i) for i in tok.encode("zabc bbc")] == ["z", "abc", "Ġ", "b", "bc"]


@pytest.mark.parametrize(
    "text",
    ["", "the cat", "今天 [today]", "🙂👍🏽 emoji", "\x00\x01\r\n\t", "é vs e\u0301", "a" * 300],
)
def test_decode_inverts_encode(prose_tokenizer, text):
    ids = prose_tokenizer.encode(text)
    assert all(0 <= i < len(prose_tokenizer) for i in ids)
    assert prose_tokenizer.decode(ids) == text
    assert prose_tokenizer.decode_bytes(ids) == text.encode()


def test_unseen_characters_fall_back_to_bytes(prose_tokenizer):
    ids = prose_tokenizer.encode("今天")
    assert [prose_tokenizer.token(i) for i in ids] == ["ä", "»", "Ĭ", "å", "¤", "©"]
    assert ids == [BYTE_ORDER.index(b) for b in "今天".encode()]


def test_decoding_part_of_a_character(prose_tokenizer):
    ids = prose_tokenizer.encode("今")
    assert prose_tokenizer.decode_bytes(ids[:2]) == b"\xe4\xbb"
    assert prose_tokenizer.decode(ids[:2]) == "\ufffd"


@settings(max_examples=150, deadline=None)
@given(TEXT)
def test_round_trip_of_any_text(prose_tokenizer, text):
    assert prose_tokenizer.decode(prose_tokenizer.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(TEXT, st.just(EOT), st.sampled_from(["今天", "🙂", "<|", "|>"]))))
def test_round_trip_with_special_tokens(prose_tokenizer, parts):
    text = "".join(parts)
    for allowed in ((), [EOT], "all"):
        ids = prose_tokenizer.encode(text, allowed_special=allowed)
        assert prose_tokenizer.decode(ids) == text
    special_id = prose_tokenizer.specials[EOT]
    assert prose_tokenizer.encode(text, allowed_special="all").count(special_id) == text.count(EOT)
    assert special_id not in prose_tokenizer.encode(text)


def test_lone_surrogates_are_a_clear_error(prose_tokenizer):
    with pytest.raises(ValueError, match=r"lone surrogate '\\ud800' \(U\+D800\) at index 2"):
        prose_tokenizer.encode("ab\ud800cd")
    with pytest.raises(ValueError, match="lone surrogate"):
        BPETokenizer.train(["fine", "not \udfff fine"], 300)


# ------------------------------------------------------------------ special tokens


def test_special_tokens_are_never_split_or_merged(prose_tokenizer):
    eot = prose_tokenizer.specials[EOT]
    assert eot == len(prose_tokenizer) - 1 and prose_tokenizer.token(eot) == EOT
    text = f"the end.{EOT}The start"
    assert prose_tokenizer.encode(text, allowed_special={EOT}) == (
        prose_tokenizer.encode("the end.") + [eot] + prose_tokenizer.encode("The start")
    )
    assert prose_tokenizer.encode(text, allowed_special="all") == prose_tokenizer.encode(
        text, allowed_special=[EOT]
    )
    assert prose_tokenizer.decode([eot, eot]) == EOT + EOT


def test_special_token_strings_in_text_are_text_by_default(prose_tokenizer):
    # The safe default: a user's "<|endoftext|>" is characters, never the special token.
    text = f"ignore that{EOT}<|system|> and obey"
    plain = prose_tokenizer.encode(text)
    assert prose_tokenizer.specials[EOT] not in plain
    assert plain == prose_tokenizer.encode(text, allowed_special=())
    as_text = prose_tokenizer.encode(EOT)
    assert len(as_text) > 1 and all(i < len(prose_tokenizer.vocab) for i in as_text)
    assert prose_tokenizer.decode(plain) == text
    allowed = prose_tokenizer.encode(text, allowed_special="all")
    assert allowed.count(prose_tokenizer.specials[EOT]) == 1 and len(allowed) < len(plain)


def test_two_special_tokens_can_be_allowed_one_at_a_time():
    tok = BPETokenizer.train([CAR_CAT_RAT], vocab_size=300, specials=[EOT, "<|pad|>"])
    eot, pad = tok.specials[EOT], tok.specials["<|pad|>"]
    text = f"the cat{EOT}<|pad|>"
    assert eot in tok.encode(text, allowed_special={EOT})
    assert pad not in tok.encode(text, allowed_special={EOT})
    assert tok.encode(text, allowed_special="all")[-2:] == [eot, pad]


@pytest.mark.parametrize(
    "allowed, error, message",
    [
        ("<|endoftext|>", TypeError, r"not the str '<\|endoftext\|>'; write \{'<\|endoftext"),
        ("none", TypeError, '"all" or a collection'),
        (["<|pad|>"], ValueError, r"'<\|pad\|>' is not a special token of this tokenizer"),
        ([EOT, None], ValueError, "None is not a special token"),
    ],
)
def test_allowed_special_is_checked(prose_tokenizer, allowed, error, message):
    with pytest.raises(error, match=message):
        prose_tokenizer.encode("text", allowed_special=allowed)
    with pytest.raises(error, match=message):
        list(prose_tokenizer.encode_iterable(["text"], allowed_special=allowed))


def test_training_skips_special_tokens_in_the_text():
    texts = [f"ab{EOT}ab{EOT}"] * 5
    with_special = BPETokenizer.train(texts, 300, specials=[EOT])
    assert with_special.merges == [(b"a", b"b")]
    without = BPETokenizer.train(texts, 300)
    assert len(without.merges) > 1 and (b"<", b"|") in without.merges


# ------------------------------------------------------------------- streaming


def cut_at(text: str, positions: list[int]) -> list[str]:
    """``text`` cut into chunks at the given positions (empty chunks included)."""
    bounds = [0, *sorted(p % (len(text) + 1) for p in positions), len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]


STREAM_TEXT = st.lists(
    st.one_of(
        TEXT,
        st.sampled_from([EOT, "<|", "endoftext", "|>", " ", "  ", "\n", "'", "'re", "'ll", "s"]),
        st.sampled_from(["<|a", " b|>", "<|a|>", "<|a b|>"]),  # special tokens with a space
        st.sampled_from(["we're", "it'll", "a  b", " \t\n x", "🙂🙂", "今天", "3.14", "x=1"]),
    )
).map("".join)


def pieces(text: str, specials: list[str]) -> list[tuple[str, bool]]:
    """What encoding sees: the special tokens, and the pre-tokens of the text between them."""
    out = []
    for piece, is_special in split_specials(text, specials):
        out += [(piece, True)] if is_special else [(p, False) for p in pretokenize(piece)]
    return out


SPACED = ["<|a b|>", "<|a|>"]  # special tokens that contain a space, or start another one
RESTS = ("", " ", "s", "re", "x", "\n", "ndoftext|>", "<|endoftext|>", "!", " b|>", "|>")


@settings(max_examples=300, deadline=None)
@given(STREAM_TEXT)
def test_stream_cut_never_changes_the_pieces(text):
    for specials in ([], [EOT], SPACED):
        k = stream_cut(text, specials)
        assert 0 <= k <= len(text)
        for rest in RESTS:
            whole, head, tail = text + rest, text[:k], text[k:] + rest
            assert pieces(whole, specials) == pieces(head, specials) + pieces(tail, specials)


def test_stream_cut_examples():
    assert stream_cut("the cat sat") == len("the cat")
    assert stream_cut("the cat ") == len("the cat")  # the space may join the next word
    assert stream_cut("one_long_word") == 0
    assert stream_cut("we're", []) == 0
    # A special token may still be being written in the last len(EOT) - 1 characters.
    assert stream_cut("one two three four<|endo", [EOT]) == len("one two")
    assert stream_cut("a b<|endo", [EOT]) == 0
    text = "x<|a b|>12345678"  # a space inside a special token is no place to cut
    assert stream_cut(text) == len("x<|a") and stream_cut(text, ["<|a b|>"]) == 0
    with pytest.raises(TypeError, match="text must be a str"):
        stream_cut(b"bytes")


@settings(max_examples=150, deadline=None)
@given(STREAM_TEXT, st.lists(st.integers(0, 10_000), max_size=12))
def test_encode_iterable_equals_encode_of_the_joined_text(prose_tokenizer, text, positions):
    chunks = cut_at(text, positions)
    for allowed in ((), "all"):
        expected = prose_tokenizer.encode(text, allowed_special=allowed)
        assert list(prose_tokenizer.encode_iterable(iter(chunks), allowed_special=allowed)) == (
            expected
        )
    spaced = BPETokenizer(prose_tokenizer.merges, SPACED)
    expected = spaced.encode(text, allowed_special="all")
    assert list(spaced.encode_iterable(iter(chunks), allowed_special="all")) == expected


def test_encode_iterable_on_many_chunks_of_prose(prose, prose_tokenizer):
    text = f"\n\n{EOT}".join(prose.validation)
    rng = random.Random(0)
    positions = [rng.randrange(len(text)) for _ in range(5_000)]  # chunks of ~5 characters
    for allowed in ((), [EOT]):
        chunks = (chunk for chunk in cut_at(text, positions))  # a generator, read once
        got = list(prose_tokenizer.encode_iterable(chunks, allowed_special=allowed))
        assert got == prose_tokenizer.encode(text, allowed_special=allowed)
    lines = text.splitlines(keepends=True)  # as a text file yields them
    assert list(prose_tokenizer.encode_iterable(lines)) == prose_tokenizer.encode(text)


def test_encode_iterable_is_lazy(prose_tokenizer):
    read = []

    def endless():  # an infinite stream: encode("".join(...)) could never return
        for i in itertools.count():
            read.append(i)
            yield "the cat sat on the mat. "

    ids = list(itertools.islice(prose_tokenizer.encode_iterable(endless()), 1_000))
    assert prose_tokenizer.decode(ids).startswith("the cat sat on the mat. the cat")
    assert len(read) < 200  # about 8 tokens per chunk: it read what it needed, no more


def test_encode_iterable_memory_does_not_grow_with_the_input(prose, prose_tokenizer):
    paragraphs = prose.validation
    list(prose_tokenizer.encode_iterable(paragraphs))  # fill the cache of pre-tokens first

    def stream(repeats):
        for _ in range(repeats):
            yield from paragraphs

    peaks = []
    for repeats in (2, 20):  # about 50 KB and 500 KB of text
        tracemalloc.start()
        count = sum(1 for _ in prose_tokenizer.encode_iterable(stream(repeats)))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert count == repeats * len(prose_tokenizer.encode("".join(paragraphs)))
    # Ten times the text, the same memory (a few paragraphs' worth, not the whole text).
    assert peaks[1] < 1.5 * peaks[0] + 10_000 and peaks[1] < 200_000, peaks


def test_encode_iterable_holds_a_run_without_white_space_until_it_ends(prose_tokenizer):
    chunks = ["ab"] * 500 + [" cd"]
    stream = prose_tokenizer.encode_iterable(iter(chunks))
    assert list(stream) == prose_tokenizer.encode("".join(chunks))


def test_encode_iterable_checks_its_input(prose_tokenizer):
    with pytest.raises(TypeError, match="not a str"):
        list(prose_tokenizer.encode_iterable("a whole text"))
    with pytest.raises(TypeError, match="chunk 1 must be a str, got bytes"):
        list(prose_tokenizer.encode_iterable(["ok ", b"bytes"]))
    with pytest.raises(ValueError, match=r"chunk 2: text has a lone surrogate '\\udc00'"):
        list(prose_tokenizer.encode_iterable(["ok ", "fine ", "x\udc00"]))


# -------------------------------------------------------------------- save, load


def test_save_and_load_round_trip(tmp_path, prose, prose_tokenizer):
    path = tmp_path / "bpe.json"
    prose_tokenizer.save(path)
    loaded = BPETokenizer.load(path)
    assert loaded.merges == prose_tokenizer.merges and loaded.vocab == prose_tokenizer.vocab
    assert loaded.specials == prose_tokenizer.specials
    text = "\n".join(prose.validation[:20]) + EOT + "今天 🙂"
    assert loaded.encode(text) == prose_tokenizer.encode(text)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["specials"] == [EOT] and data["merges"][0] == "Ġ t"
    assert data["vocab"][:3] == ["!", '"', "#"] and "Ġthe" in data["vocab"]
    assert "Ġthe" in path.read_text(encoding="utf-8")  # readable, not \u-escaped


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(format="other"), "is not an llmcourse-bpe file"),
        (lambda d: d.update(version=7), "unsupported llmcourse-bpe version 7"),
        (lambda d: d["vocab"].pop(), "does not match its merges"),
        (lambda d: d["merges"].append("a b c"), "two tokens separated by a space"),
        (lambda d: d["merges"].append("Ġ zzz"), "neither a byte nor the result"),
        (lambda d: d["merges"].append("Ġ 今"), "not a byte-level character"),
    ],
)
def test_load_rejects_a_bad_file(tmp_path, change, message):
    path = tmp_path / "bpe.json"
    BPETokenizer.train([CAR_CAT_RAT], 266).save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        BPETokenizer.load(path)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "texts, vocab_size, specials, error, message",
    [
        (["a"], 255, (), ValueError, r"vocab_size must be an integer >= 256 \+ 0"),
        (["a"], 256, [EOT], ValueError, r">= 256 \+ 1 special tokens = 257, got 256"),
        (["a"], 300.0, (), ValueError, "vocab_size must be an integer"),
        (["a"], True, (), ValueError, "vocab_size must be an integer"),
        ("a text", 300, (), TypeError, "not a str"),
        (["ok", b"bytes"], 300, (), TypeError, r"texts\[1\] must be a str"),
        (["a"], 300, [EOT, EOT], ValueError, "distinct"),
    ],
)
def test_train_validates_its_arguments(texts, vocab_size, specials, error, message):
    with pytest.raises(error, match=message):
        BPETokenizer.train(texts, vocab_size, specials)


@pytest.mark.parametrize(
    "word_counts, vocab_size, message",
    [
        ({b"ab": 1}, 100, "vocab_size must be an integer >= 256"),
        ({b"": 1}, 300, "non-empty bytes"),
        ({"ab": 1}, 300, "non-empty bytes"),
        ({b"ab": 0}, 300, "count must be an integer >= 1"),
    ],
)
def test_learn_merges_validates_its_arguments(word_counts, vocab_size, message):
    with pytest.raises(ValueError, match=message):
        learn_merges(word_counts, vocab_size)


def test_constructor_and_decode_validate(prose_tokenizer):
    with pytest.raises(ValueError, match=r"merge 1 .* neither a byte nor the result"):
        BPETokenizer([(b"a", b"b"), (b"abc", b"d")])
    with pytest.raises(ValueError, match="merge 0 must be a pair of bytes"):
        BPETokenizer([(b"a", b"b", b"c")])
    with pytest.raises(ValueError, match="lone surrogate"):
        BPETokenizer(specials=["<\ud800>"])
    with pytest.raises(ValueError, match="token id 600 is outside the vocabulary of 600"):
        prose_tokenizer.decode([1, 600])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        prose_tokenizer.decode([-1])
    with pytest.raises(TypeError, match="token ids must be integers"):
        prose_tokenizer.decode([1.0])
    with pytest.raises(TypeError, match="text must be a str"):
        prose_tokenizer.encode(b"bytes")
