"""Pre-tokenization: cut text into the pieces that BPE merges within, never across.

Byte-pair encoding learns merges of adjacent symbols. Run on raw text, it would happily
learn tokens such as ``"dog."`` and ``"dog!"`` and ``"e t"`` that straddle word and
punctuation boundaries. GPT-2 (Radford et al., 2019) therefore first cuts the text with
a regular expression and lets BPE merge only inside each piece. Its pattern, used here
unchanged, matches the first that applies of

- an English contraction suffix: ``'s 't 're 've 'm 'll 'd``;
- an optional space and a run of letters (``\\p{L}``, any script);
- an optional space and a run of digits (``\\p{N}``);
- an optional space and a run of other characters (punctuation, symbols, emoji);
- a run of white space that is not followed by a non-space (so that the last space
  before a word stays with the word), or else any run of white space.

GPT-4's pattern (:data:`GPT4_PATTERN`, OpenAI's ``cl100k_base``, also used unchanged)
differs in four ways: a number is cut into groups of at most three digits (left to right,
``"1234567"`` gives ``"123" "456" "7"``) and never takes the space before it; the
contractions are matched in any case (``"DON'T"`` gives ``"DON" "'T"``); one non-letter,
non-digit character other than a line break may lead a run of letters (``".py"``,
``"(x"``, ``"_name"``); and line breaks stay with the punctuation or white space before
them. ``pretokenize(text, GPT4_PATTERN)`` cuts with it.

The pieces concatenate back to the text exactly. Special tokens (``<|endoftext|>``)
are cut out before pre-tokenization by :func:`split_specials`, so that they are never
split and never merged with their neighbours. :func:`stream_cut` says where a text that
is still growing (a file read chunk by chunk) can be cut without changing its pieces.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import lru_cache

import regex

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)
_GPT2 = regex.compile(GPT2_PATTERN)
_BUILT_IN = {GPT2_PATTERN: _GPT2, GPT4_PATTERN: regex.compile(GPT4_PATTERN)}
_LAST_CUT = regex.compile(r"(?r)\S(?=\s)")  # right to left: the last non-space before a space


@lru_cache(maxsize=16)
def _compiled(pattern: str) -> regex.Pattern:
    try:
        return regex.compile(pattern)
    except regex.error as error:
        raise ValueError(f"pattern is not a valid regular expression: {error}") from None


def pretokenize(text: str, pattern: str = GPT2_PATTERN) -> list[str]:
    """Cut text into pre-tokens; ``"".join(pretokenize(text, pattern)) == text``.

    Args:
        text: any ``str``.
        pattern: the regular expression (``regex`` syntax) whose matches, left to right,
            are the pre-tokens: :data:`GPT2_PATTERN` (the default) or :data:`GPT4_PATTERN`.
            Another pattern must match every character of ``text`` with non-empty matches,
            otherwise ``ValueError``. (The tokenizer of :mod:`llmcourse.text.bpe` and
            :func:`stream_cut` use GPT-2's pattern.)

    Returns:
        The pre-tokens, in order.

    >>> pretokenize("The cat's 2 dogs   ran!")
    ['The', ' cat', "'s", ' 2', ' dogs', '  ', ' ran', '!']
    >>> pretokenize("DON'T pay 1234567.py", GPT4_PATTERN)
    ['DON', "'T", ' pay', ' ', '123', '456', '7', '.py']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str, got {type(pattern).__name__}")
    built_in = _BUILT_IN.get(pattern)
    if built_in is not None:
        return built_in.findall(text)
    pieces = _compiled(pattern).findall(text)
    if not all(isinstance(piece, str) and piece for piece in pieces):
        raise ValueError(
            "pattern must give non-empty matches of the whole text (no empty match, no "
            "capturing groups; write (?:...) for a group)"
        )
    if sum(map(len, pieces)) != len(text):
        raise ValueError("pattern must match every character of the text; it skipped some")
    return pieces


def check_specials(specials: Collection[str]) -> list[str]:
    """The special tokens as a list; ``ValueError`` unless they are distinct non-empty strings."""
    if isinstance(specials, str):
        raise TypeError(f"specials must be a collection of strings, not the str {specials!r}")
    specials = list(specials)
    for special in specials:
        if not isinstance(special, str) or not special:
            raise ValueError(f"every special token must be a non-empty str, got {special!r}")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special tokens must be distinct, got {specials!r}")
    return specials


@lru_cache(maxsize=64)
def _specials_pattern(specials: tuple[str, ...]) -> regex.Pattern:
    # Alternatives are tried in order: longest first gives leftmost-longest matches.
    longest_first = sorted(specials, key=len, reverse=True)
    return regex.compile("|".join(regex.escape(s) for s in longest_first))


def split_specials(text: str, specials: Collection[str]) -> list[tuple[str, bool]]:
    """Cut text at the occurrences of special tokens.

    Matching is leftmost-longest: at each position the longest special token that
    starts there wins (``"<a><b>"`` with specials ``"<a>"`` and ``"<a><b>"`` is one
    special token).

    Returns:
        ``(piece, is_special)`` pairs in order, without empty pieces; the pieces
        concatenate back to ``text``.

    >>> split_specials("hi<|endoftext|>yo", ["<|endoftext|>"])
    [('hi', False), ('<|endoftext|>', True), ('yo', False)]
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    specials = check_specials(specials)
    if not specials:
        return [(text, False)] if text else []
    pieces, start = [], 0
    for match in _specials_pattern(tuple(specials)).finditer(text):
        if match.start() > start:
            pieces.append((text[start : match.start()], False))
        pieces.append((match.group(), True))
        start = match.end()
    if start < len(text):
        pieces.append((text[start:], False))
    return pieces


def stream_cut(text: str, specials: Collection[str] = ()) -> int:
    """The largest ``k`` such that, whatever text ``rest`` follows, ``text + rest`` is cut
    into the same pieces as ``text[:k]`` followed by ``text[k:] + rest``; 0 if none is known.

    ``k`` is the position of a white-space character that follows a non-space one. GPT-2's
    pattern never lets a piece run from a non-space across white space (a space only ever
    *starts* a piece), and no alternative looks further ahead than that white space, so the
    pieces before ``k`` are settled and the first piece after it starts at ``k``. With
    ``specials``, ``k`` also lies outside every occurrence of a special token, and far
    enough from the end that a special token still being written (``"<|endo"``) cannot
    reach back across it. This is what lets a tokenizer encode a stream chunk by chunk,
    holding back only the text after the last such position.

    >>> stream_cut("the cat sat")
    7
    >>> text = "a b<|endoftext|>"
    >>> text[: stream_cut(text, ["<|endoftext|>"])]
    'a'
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    specials = check_specials(specials)
    end = len(text)
    spans: list[tuple[int, int]] = []
    if specials:
        # A special token that starts at or after len - longest + 1 may not be complete yet.
        end = min(end, len(text) - max(map(len, specials)) + 1)
        position = 0
        for piece, is_special in split_specials(text, specials):
            if is_special:
                spans.append((position, position + len(piece)))
            position += len(piece)
    while end > 0 and (match := _LAST_CUT.search(text, 0, min(end + 1, len(text)))):
        cut = match.end()
        if cut <= end and not any(start < cut < stop for start, stop in spans):
            return cut
        end = match.start()  # look further left
    return 0
