"""Byte-level byte-pair encoding (BPE): training, encoding, decoding, saving.

BPE (Gage, 1994; Sennrich et al., 2016) builds a vocabulary of subwords by starting from
single symbols and repeatedly adding the most frequent pair of adjacent symbols as a new
symbol, a *merge*. Byte-level BPE (GPT-2; Radford et al., 2019) starts from the 256
bytes, so that every string has an encoding and no token is ever unknown.

**Encoding** ``text -> ids``: cut out the special tokens that the caller allows (never
split or merged), cut the rest into pre-tokens with GPT-2's pattern
(:mod:`llmcourse.text.pretokenize`), and for each pre-token start from its UTF-8 bytes and
apply merges, always the adjacent pair with the lowest merge rank first (the leftmost one
among equals), until no pair of the merge list is left. This is the same as replaying the
merges in the order they were learned, because a merge can only create pairs that were
learned after it (GPT-2 and Hugging Face ``tokenizers`` encode the same way). Results are
cached per pre-token. :meth:`BPETokenizer.encode_iterable` encodes a stream (a file).

**Special tokens are opt-in**: ``"<|endoftext|>"`` in a text is ordinary text unless the
caller allows it (``allowed_special``, as in OpenAI's ``tiktoken``), so that text from a
user or a data set cannot inject a special token (end a document, fake a chat turn).
Code that builds a model's input adds the ids itself: ``[eot_id, *tok.encode(text)]``.

**Decoding** ``ids -> text``: concatenate the tokens' bytes and decode them as UTF-8. For
any ``str`` ``s`` without lone surrogates, ``decode(encode(s)) == s``. A lone surrogate
(``"\\ud800"``, which Python strings allow) has no UTF-8 encoding: encoding it raises a
``ValueError`` that names it. A list of ids that cuts a character's bytes apart decodes
with U+FFFD replacement characters (:meth:`BPETokenizer.decode_bytes` gives the bytes).

**Ids**: 0-255 are the single bytes in the order of GPT-2's vocabulary
(:data:`~llmcourse.text.bytelevel.BYTE_ORDER`, the order of their printable stand-ins
such as ``Ġ`` for a space: :mod:`llmcourse.text.bytelevel`). Then come the merged tokens
in the order training created them, and last the special tokens.

**Training** (:mod:`llmcourse.text.bpe_training`) counts the pre-tokens of the text
once and merges the most frequent pair until the vocabulary is full.
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Literal

from llmcourse.text.bpe_training import count_words, learn_merges
from llmcourse.text.bytelevel import BYTE_ID, BYTE_ORDER, from_byte_level, to_byte_level, utf8
from llmcourse.text.pretokenize import check_specials, pretokenize, split_specials, stream_cut

FORMAT, VERSION = "llmcourse-bpe", 1
CACHE_SIZE = 100_000  # pre-tokens whose encoding is remembered before the cache is cleared


class BPETokenizer:
    """A byte-level BPE tokenizer: a list of merges and a list of special tokens.

    Args:
        merges: pairs of tokens (bytes), in rank order; each token of a pair must be a
            byte or the result of an earlier merge. The vocabulary is the 256 bytes,
            then each merge's result that is new, then the special tokens.
        specials: special tokens such as ``"<|endoftext|>"``: never split, never merged.

    Use :meth:`train` to learn the merges from text, :meth:`save` and :meth:`load` to
    keep them. See the module docstring for the algorithm, the ids and the tie-breaking.

    Example:
        >>> tok = BPETokenizer.train(["the car the cat the rat"] * 2, vocab_size=260)
        >>> [tok.token(i) for i in tok.encode("the cat")]
        ['the', 'Ġc', 'at']
        >>> tok.decode(tok.encode("the cat, 今天 🙂"))
        'the cat, 今天 🙂'
        >>> tok = BPETokenizer.train(["the car"], vocab_size=300, specials=["<|endoftext|>"])
        >>> len(tok.encode("<|endoftext|>")), tok.encode("<|endoftext|>", allowed_special="all")
        (13, [261])
    """

    def __init__(
        self, merges: Sequence[tuple[bytes, bytes]] = (), specials: Sequence[str] = ()
    ) -> None:
        self.vocab: list[bytes] = [bytes([b]) for b in BYTE_ORDER]
        self._ids: dict[bytes, int] = {token: i for i, token in enumerate(self.vocab)}
        # (left id, right id) -> (rank, id of the result), the first rank if a pair repeats
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}
        for rank, merge in enumerate(merges):
            if not (isinstance(merge, tuple | list) and len(merge) == 2):
                raise ValueError(f"merge {rank} must be a pair of bytes, got {merge!r}")
            for part in merge:
                if not isinstance(part, bytes) or part not in self._ids:
                    raise ValueError(
                        f"merge {rank} {merge!r}: {part!r} is neither a byte nor the result "
                        "of an earlier merge"
                    )
            left, right = merge
            result = left + right
            if result not in self._ids:
                self._ids[result] = len(self.vocab)
                self.vocab.append(result)
            pair = (self._ids[left], self._ids[right])
            self._ranks.setdefault(pair, (rank, self._ids[result]))
        self.merges: list[tuple[bytes, bytes]] = [(left, right) for left, right in merges]
        self.specials: dict[str, int] = {
            s: len(self.vocab) + i for i, s in enumerate(check_specials(specials))
        }
        for special in self.specials:
            utf8(special)
        self._special_bytes = {i: utf8(s) for s, i in self.specials.items()}
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, specials: Sequence[str] = ()
    ) -> BPETokenizer:
        """Learn merges from ``texts`` until the vocabulary has ``vocab_size`` tokens.

        Args:
            texts: training texts (e.g. paragraphs); each is pre-tokenized separately.
            vocab_size: all tokens, the 256 bytes and the special tokens included; so
                ``vocab_size >= 256 + len(specials)``. Training ends earlier if no pair
                of adjacent tokens is left.
            specials: special tokens; their occurrences in ``texts`` are not trained on.
        """
        specials = check_specials(specials)
        minimum = 256 + len(specials)
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < minimum:
            raise ValueError(
                f"vocab_size must be an integer >= 256 + {len(specials)} special tokens "
                f"= {minimum}, got {vocab_size!r}"
            )
        merges = learn_merges(count_words(texts, specials), vocab_size - len(specials))
        return cls(merges, specials)

    def __len__(self) -> int:
        """The number of tokens: bytes, merged tokens and special tokens."""
        return len(self.vocab) + len(self.specials)

    def __repr__(self) -> str:
        specials = list(self.specials)
        return f"BPETokenizer({len(self)} tokens, {len(self.merges)} merges, specials={specials})"

    # ------------------------------------------------------------------ encoding
    def _encode_word(self, word: str) -> list[int]:
        """The ids of one pre-token: its bytes, merged lowest rank (then leftmost) first."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        symbols = [BYTE_ID[b] for b in word.encode()]
        ranks = self._ranks
        while len(symbols) > 1:
            best = None  # (rank, position, new id)
            for i in range(len(symbols) - 1):
                found = ranks.get((symbols[i], symbols[i + 1]))
                if found is not None and (best is None or found[0] < best[0]):
                    best = (found[0], i, found[1])
            if best is None:
                break
            _, i, new = best
            symbols[i : i + 2] = [new]
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[word] = symbols
        return symbols

    def _allowed(self, allowed_special: Collection[str] | Literal["all"]) -> tuple[str, ...]:
        """The special tokens that ``allowed_special`` lets through, checked."""
        if isinstance(allowed_special, str):
            if allowed_special == "all":
                return tuple(self.specials)
            raise TypeError(
                'allowed_special must be "all" or a collection of special tokens, not the str '
                f"{allowed_special!r}; write {{{allowed_special!r}}}"
            )
        allowed = tuple(dict.fromkeys(allowed_special))  # in order, without repeats
        for special in allowed:
            if special not in self.specials:
                raise ValueError(
                    f"allowed_special: {special!r} is not a special token of this tokenizer "
                    f"(it has {list(self.specials)})"
                )
        return allowed

    def _encode(self, text: str, allowed: tuple[str, ...]) -> list[int]:
        ids: list[int] = []
        for piece, is_special in split_specials(text, allowed):
            if is_special:
                ids.append(self.specials[piece])
            else:
                for word in pretokenize(piece):
                    ids.extend(self._encode_word(word))
        return ids

    def encode(
        self, text: str, allowed_special: Collection[str] | Literal["all"] = ()
    ) -> list[int]:
        """The token ids of ``text``.

        Args:
            text: any ``str`` without lone surrogates.
            allowed_special: the special tokens whose strings in ``text`` become their ids:
                a collection such as ``{"<|endoftext|>"}``, or ``"all"``. By default none:
                every special-token string in ``text`` is encoded as ordinary text, which
                is what untrusted text needs (see the module docstring).

        Raises:
            ValueError: ``text`` contains a lone surrogate, or ``allowed_special`` names
                a string that is not one of the tokenizer's special tokens.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        allowed = self._allowed(allowed_special)
        utf8(text)  # a lone surrogate is an error that names its place in the text
        return self._encode(text, allowed)

    def encode_iterable(
        self, chunks: Iterable[str], allowed_special: Collection[str] | Literal["all"] = ()
    ) -> Iterator[int]:
        """The ids of ``encode("".join(chunks), allowed_special)``, yielded lazily.

        ``chunks`` is an open text file or any iterable of strings, cut anywhere (inside a
        word or a special token too). The text after the last place where its pre-tokens
        are settled, a white-space character after a non-space one
        (:func:`~llmcourse.text.pretokenize.stream_cut`), waits for the next chunk. So
        memory is bounded by a chunk plus the longest run without white space (and the
        bounded cache of pre-tokens), however long the stream.

        Raises:
            TypeError: ``chunks`` is a ``str`` (use :meth:`encode`) or yields a non-str.
            ValueError: as :meth:`encode`; the message names the chunk.
        """
        if isinstance(chunks, str):
            raise TypeError("chunks must be an iterable of strings (e.g. a file), not a str")
        allowed = self._allowed(allowed_special)
        pending = ""
        for index, chunk in enumerate(chunks):
            if not isinstance(chunk, str):
                raise TypeError(f"chunk {index} must be a str, got {type(chunk).__name__}")
            try:
                utf8(chunk)
            except ValueError as error:
                raise ValueError(f"chunk {index}: {error}") from None
            pending += chunk
            cut = stream_cut(pending, allowed)
            if cut:
                yield from self._encode(pending[:cut], allowed)
                pending = pending[cut:]
        yield from self._encode(pending, allowed)

    # ------------------------------------------------------------------ decoding
    def _bytes_of(self, i: int) -> bytes:
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"token ids must be integers, got {i!r}") from None
        if 0 <= i < len(self.vocab):
            return self.vocab[i]
        if i in self._special_bytes:
            return self._special_bytes[i]
        raise ValueError(f"token id {i} is outside the vocabulary of {len(self)} tokens")

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The concatenated bytes of the tokens (special tokens as their UTF-8 strings)."""
        return b"".join(self._bytes_of(i) for i in ids)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of the tokens; bytes that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token(self, i: int) -> str:
        """Token ``i`` spelled as in GPT-2's vocabulary files: ``"Ġthe"``, ``"<|endoftext|>"``."""
        if i in self._special_bytes:
            return self._special_bytes[i].decode("utf-8")
        return to_byte_level(self._bytes_of(i))

    # ---------------------------------------------------------------- save, load
    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as human-readable JSON (token strings as in :meth:`token`)."""
        data = {
            "format": FORMAT,
            "version": VERSION,
            "specials": list(self.specials),
            "vocab": [to_byte_level(token) for token in self.vocab],
            "merges": [f"{to_byte_level(a)} {to_byte_level(b)}" for a, b in self.merges],
        }
        with open(path, "w", encoding="utf-8") as file:
            json.dump(data, file, ensure_ascii=False, indent=1)
            file.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a tokenizer written by :meth:`save`.

        Raises:
            ValueError: the file is not such a tokenizer, or its vocabulary does not
                match its merges.
        """
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{os.fspath(path)} is not an {FORMAT} file")
        if data.get("version") != VERSION:
            raise ValueError(f"unsupported {FORMAT} version {data.get('version')!r}")
        merges = []
        for line in data["merges"]:
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"a merge must be two tokens separated by a space, got {line!r}")
            merges.append((from_byte_level(parts[0]), from_byte_level(parts[1])))
        tokenizer = cls(merges, data["specials"])
        if [to_byte_level(token) for token in tokenizer.vocab] != data["vocab"]:
            raise ValueError(f"the vocab in {os.fspath(path)} does not match its merges")
        return tokenizer
