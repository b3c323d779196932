"""Unit tests for GPT-4's pre-tokenization pattern in llmcourse.text.pretokenize.

The expected pieces of the examples are worked out by hand from the pattern's
alternatives. Parity: Hugging Face ``tokenizers``' ``Split`` pre-tokenizer runs the same
pattern string on a different regular-expression engine (Oniguruma, in Rust); both must cut
the prose corpus and random text identically. The random text is drawn from code points up
to U+0500 and a list of letters, digits, spaces and symbols of other scripts: a few hundred
letters assigned in the newest Unicode versions (e.g. U+0558) are letters for the ``regex``
package but not yet for Oniguruma, so the two engines differ there, on the alphabet and not
on the pattern.
"""

from __future__ import annotations

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Regex, pre_tokenizers

from llmcourse.data import python_docs
from llmcourse.text import GPT2_PATTERN, GPT4_PATTERN, pretokenize

OTHER_SCRIPTS = list("éßЖж今天機械学習ابت٣४१๓½²🙂👍’‘“”—…\u00a0\u2028\u3000\r\n\t\x0b\x0c")
ALPHABET = st.one_of(
    st.characters(max_codepoint=0x500, exclude_categories=["Cs"]), st.sampled_from(OTHER_SCRIPTS)
)
TEXT = st.text(ALPHABET, max_size=80)
DIGITS = st.text(st.sampled_from("0123456789٣४"), min_size=1, max_size=20)


def reference(text: str) -> list[str]:
    """The pieces that Hugging Face's Split pre-tokenizer (Oniguruma) cuts with the pattern."""
    split = pre_tokenizers.Split(Regex(GPT4_PATTERN), behavior="isolated")
    return [piece for piece, _ in split.pre_tokenize_str(text)]


@pytest.mark.parametrize(
    "text, expected",
    [
        # digits: groups of at most three, left to right, without the space before them
        ("In 2023, 1234567 bytes", ["In", " ", "202", "3", ",", " ", "123", "456", "7", " bytes"]),
        ("x=3.14159", ["x", "=", "3", ".", "141", "59"]),
        # contractions in any case; GPT-2's are lower case only
        ("DON'T we'LL I'm", ["DON", "'T", " we", "'LL", " I", "'m"]),
        # one leading symbol joins a run of letters; punctuation keeps its line breaks
        ("os.path.join()", ["os", ".path", ".join", "()"]),
        ("print(x)\n\n  foo", ["print", "(x", ")\n\n", " ", " foo"]),
        ("a\n\nb", ["a", "\n\n", "b"]),
        ("a  \n b", ["a", "  \n", " b"]),
        ("什么是机器学习?", ["什么是机器学习", "?"]),
        ("Hello 🙂🙂 ok", ["Hello", " 🙂🙂", " ok"]),
        ("", []),
    ],
)
def test_gpt4_examples(text, expected):
    assert pretokenize(text, GPT4_PATTERN) == expected


def test_gpt2_is_the_default_and_differs_from_gpt4_where_described():
    text = "DON'T pay 1234567.py"
    assert pretokenize(text) == pretokenize(text, GPT2_PATTERN)
    assert pretokenize(text) == ["DON", "'", "T", " pay", " 1234567", ".", "py"]
    assert pretokenize(text, GPT4_PATTERN) == ["DON", "'T", " pay", " ", "123", "456", "7", ".py"]


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_gpt4_pieces_concatenate_to_the_text_and_are_never_empty(text):
    pieces = pretokenize(text, GPT4_PATTERN)
    assert "".join(pieces) == text
    assert all(pieces)


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_gpt4_never_puts_more_than_three_digits_in_a_piece(text):
    for piece in pretokenize(text, GPT4_PATTERN):
        digits = regex.findall(r"\p{N}", piece)
        assert len(digits) <= 3
        if digits:  # a piece with a digit is made of digits only
            assert len(digits) == len(piece), piece


@given(DIGITS, st.sampled_from(["", " ", "x", "(", "\n"]))
def test_gpt4_cuts_a_number_into_threes_from_the_left_whatever_precedes_it(number, before):
    groups = [number[i : i + 3] for i in range(0, len(number), 3)]
    pieces = pretokenize(before + number, GPT4_PATTERN)
    assert pieces[-len(groups) :] == groups
    assert "".join(pieces[: -len(groups)]) == before


def test_gpt4_matches_huggingface_split_on_the_prose():
    docs = python_docs()
    for paragraph in docs.train + docs.validation:
        assert pretokenize(paragraph, GPT4_PATTERN) == reference(paragraph)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_gpt4_matches_huggingface_split_on_random_text(text):
    assert pretokenize(text, GPT4_PATTERN) == reference(text)


def test_other_patterns_are_accepted_if_they_cover_the_text():
    assert pretokenize("a bc  d", r"\S+|\s+") == ["a", " ", "bc", "  ", "d"]


@pytest.mark.parametrize(
    "pattern, message",
    [
        (r"\p{L}+", "every character"),  # skips the space
        (r"\p{L}*|\s", "non-empty"),  # matches the empty string
        (r"(\S+)|\s+", "non-empty"),  # a capturing group: findall gives groups
        (r"[a-", "valid regular expression"),
    ],
)
def test_bad_patterns_raise(pattern, message):
    with pytest.raises(ValueError, match=message):
        pretokenize("ab c", pattern)


def test_non_string_arguments_raise():
    with pytest.raises(TypeError, match="pattern"):
        pretokenize("ab", pattern=regex.compile(r"\S+|\s+"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text"):
        pretokenize(b"ab", GPT4_PATTERN)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_gpt4_possessive_quantifiers_change_no_match(text):
    # The chapter says ?+ and ++ only save backtracking: the greedy pattern cuts alike.
    greedy = GPT4_PATTERN.replace("?+", "?").replace("++", "+")
    assert greedy != GPT4_PATTERN
    assert regex.findall(greedy, text) == pretokenize(text, GPT4_PATTERN)
