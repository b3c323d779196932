"""Simple tokenization for the early chapters: words, sentences, characters, vocabularies.

Subword tokenization (BPE) has its own chapter and module; here a token is a
lower-cased word, a number or a single punctuation mark, or one character.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+|\S")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"


def word_tokenize(text: str) -> list[str]:
    """Split text into lower-cased words (any alphabet), numbers and single other characters.

    >>> word_tokenize("Students opened their books, didn't they?")
    ['students', 'opened', 'their', 'books', ',', "didn't", 'they', '?']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def split_sentences(text: str) -> list[str]:
    """Split text at '.', '!' or '?' followed by white space and a capital letter or digit."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def tokenized_sentences(paragraphs: Iterable[str]) -> list[list[str]]:
    """Word-tokenize every sentence of every paragraph; empty sentences are dropped."""
    sentences = []
    for paragraph in paragraphs:
        for sentence in split_sentences(paragraph):
            tokens = word_tokenize(sentence)
            if tokens:
                sentences.append(tokens)
    return sentences


def char_tokenize(text: str) -> list[str]:
    """One token per character (Unicode code point), white space included."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return list(text)


class Vocab:
    """A bijection between tokens and integer ids, with an unknown-token fallback.

    Ids are assigned to the special tokens first, in the order given, then to the
    other tokens by decreasing count (ties broken alphabetically), so a vocabulary
    is the same for the same data on every run.

    Args:
        tokens: the training tokens (any iterable of str).
        min_count: tokens seen fewer times become ``<unk>``.
        specials: special tokens that always get the first ids.
    """

    def __init__(
        self,
        tokens: Iterable[str],
        min_count: int = 1,
        specials: Sequence[str] = (UNK, BOS, EOS),
    ) -> None:
        if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        if UNK not in specials:
            raise ValueError(f"specials must include the unknown token {UNK!r}, got {specials!r}")
        counts = Counter(tokens)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_count and t not in specials),
            key=lambda t: (-counts[t], t),
        )
        self.itos: list[str] = list(dict.fromkeys(specials)) + kept
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        self.unk_id = self.stoi[UNK]

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def lookup(self, tokens: Iterable[str]) -> list[str]:
        """Replace out-of-vocabulary tokens by ``<unk>``."""
        return [t if t in self.stoi else UNK for t in tokens]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Token strings to ids; unknown tokens map to the id of ``<unk>``."""
        return [self.stoi.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids to token strings; raises ``IndexError`` for an id outside the vocabulary."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise IndexError(f"id {i} is outside the vocabulary of size {len(self.itos)}")
            out.append(self.itos[i])
        return out
