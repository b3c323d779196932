"""Training a byte-level BPE: the merges, learned from word counts.

**Training** counts the pre-tokens of the text once, then keeps for every adjacent pair
its count over the corpus and the set of words that contain it. A merge rewrites only the
words that contain its pair and updates only the counts of the pairs it touched; the
corpus is never recounted. The pair to merge is the most frequent; **ties** go to the pair
whose left token has the smallest id, then whose right token has the smallest id. This is
the rule of Hugging Face's ``BpeTrainer`` with the same byte order, so both learn the same
merges (``tests/test_bpe_tokenizers_parity.py``). Should two different pairs spell the same
string (``"a" + "bc"`` and ``"ab" + "c"``), the later merge is recorded but adds no token,
as in that trainer.
Because training is greedy, the merges for a smaller vocabulary are a prefix of those for
a larger one.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from itertools import pairwise

from llmcourse.text.bytelevel import BYTE_ID, BYTE_ORDER, utf8
from llmcourse.text.pretokenize import check_specials, pretokenize, split_specials


def _check_texts(texts: Iterable[str]) -> Iterable[str]:
    if isinstance(texts, str):
        raise TypeError(
            "texts must be an iterable of strings (e.g. a list of paragraphs), not a str"
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
        yield text


def count_words(texts: Iterable[str], specials: Collection[str] = ()) -> Counter[bytes]:
    """The UTF-8 bytes of every pre-token of ``texts``, with their counts.

    Each text is pre-tokenized separately; occurrences of ``specials`` are cut out
    first and not counted, so training never merges into a special token.
    """
    specials = check_specials(specials)
    counts: Counter[bytes] = Counter()
    for text in _check_texts(texts):
        utf8(text)  # a lone surrogate is an error that names its place in the text
        for piece, is_special in split_specials(text, specials):
            if not is_special:
                counts.update(word.encode() for word in pretokenize(piece))
    return counts


def _merge_word(word: list[int], a: int, b: int, new: int) -> list[int]:
    """``word`` with every occurrence of ``a b`` replaced by ``new``, left to right."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


class PairCounts:
    """The counts of adjacent token pairs in a corpus of words, kept up to date by merges.

    Args:
        words: each word as a list of token ids (it is modified in place by merges).
        freqs: how often each word occurs.

    Attributes:
        counts: ``(left id, right id) -> sum over words of freq * occurrences`` (only
            positive counts are kept; overlapping occurrences, as in ``a a a``, count
            twice, as when counting from scratch).
        where: ``pair -> indices of the words that contain it`` (or contained it: a
            word may stay listed after a merge removed the pair from it).
    """

    def __init__(self, words: list[list[int]], freqs: list[int]) -> None:
        if len(words) != len(freqs):
            raise ValueError(f"got {len(words)} words but {len(freqs)} counts")
        self.words, self.freqs = words, freqs
        self.counts: defaultdict[tuple[int, int], int] = defaultdict(int)
        self.where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        for w, (word, freq) in enumerate(zip(words, freqs, strict=True)):
            for pair in pairwise(word):
                self.counts[pair] += freq
                self.where[pair].add(w)
        # A max-heap by count, then smallest ids. An entry is stale when its count is not
        # the pair's current count: a fresh entry is pushed whenever a count changes.
        self._heap = [(-count, a, b) for (a, b), count in self.counts.items()]
        heapq.heapify(self._heap)

    def most_frequent(self) -> tuple[int, int] | None:
        """The pair with the highest count, ties to the smallest ids; None if none is left."""
        while self._heap:
            negative_count, a, b = self._heap[0]
            if self.counts.get((a, b)) == -negative_count:
                return a, b
            heapq.heappop(self._heap)
        return None

    def merge(self, pair: tuple[int, int], new: int) -> None:
        """Replace ``pair`` by the token ``new`` in every word that contains it.

        Only those words are rewritten, and only the counts of the pairs they lose or
        gain change.
        """
        a, b = pair
        delta: defaultdict[tuple[int, int], int] = defaultdict(int)
        for w in self.where.pop(pair, ()):
            old = self.words[w]
            merged = _merge_word(old, a, b, new)
            if len(merged) == len(old):
                continue  # an earlier merge took the pair out of this word
            for p in pairwise(old):
                delta[p] -= self.freqs[w]
            for p in pairwise(merged):
                delta[p] += self.freqs[w]
                self.where[p].add(w)
            self.words[w] = merged
        for p, change in delta.items():
            if change:
                self.counts[p] += change
                if self.counts[p] > 0:
                    heapq.heappush(self._heap, (-self.counts[p], *p))
                else:
                    del self.counts[p]
                    self.where.pop(p, None)


def learn_merges(word_counts: Mapping[bytes, int], vocab_size: int) -> list[tuple[bytes, bytes]]:
    """Learn BPE merges from word counts until the vocabulary has ``vocab_size`` tokens.

    Args:
        word_counts: each word's UTF-8 bytes (a pre-token) and how often it occurs.
        vocab_size: the number of tokens to reach, the 256 bytes included (>= 256).
            Training stops earlier when no adjacent pair is left.

    Returns:
        The merges in the order they were learned, each a pair of tokens as bytes.
    """
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 256:
        raise ValueError(f"vocab_size must be an integer >= 256 (the bytes), got {vocab_size!r}")
    for word, freq in word_counts.items():
        if not isinstance(word, bytes) or not word:
            raise ValueError(f"every word must be non-empty bytes, got {word!r}")
        if not isinstance(freq, int) or isinstance(freq, bool) or freq < 1:
            raise ValueError(f"every count must be an integer >= 1, got {freq!r} for {word!r}")
    tokens = [bytes([b]) for b in BYTE_ORDER]
    ids = {token: i for i, token in enumerate(tokens)}
    pairs = PairCounts(
        [[BYTE_ID[b] for b in word] for word in word_counts], list(word_counts.values())
    )
    merges = []
    while len(tokens) < vocab_size and (best := pairs.most_frequent()) is not None:
        a, b = best
        merged = tokens[a] + tokens[b]
        if merged not in ids:  # (as in Hugging Face's trainer, a repeated spelling adds no token)
            ids[merged] = len(tokens)
            tokens.append(merged)
        merges.append((tokens[a], tokens[b]))
        pairs.merge(best, ids[merged])
    return merges
