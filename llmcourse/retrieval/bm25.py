"""BM25, the sparse retriever: scoring documents by the query words they contain.

Okapi BM25 {Robertson and Zaragoza, 2009} scores a document ``D`` for a query ``Q`` by
adding, over the query's words ``q`` (a repeated word counts each time),

    score(D, Q) = sum_q idf(q) * f(q, D) (k1 + 1) / (f(q, D) + k1 (1 - b + b |D| / avgdl))

where ``f(q, D)`` is how often ``q`` occurs in ``D``, ``|D|`` the document's length in
words and ``avgdl`` the mean length. The term frequency saturates (``k1``, 1.5 here):
the tenth occurrence of a word adds much less than the first. Long documents are
discounted (``b``, 0.75): they contain more words by chance. A word's weight is its
inverse document frequency,

    idf(q) = ln((N - n(q) + 0.5) / (n(q) + 0.5)),

with ``N`` documents of which ``n(q)`` contain ``q``: rare words, like a name, weigh
much more than common ones. That idf is negative for a word in more than half of the
documents; as in the ``rank_bm25`` package (whose ``BM25Okapi`` scores this module
matches), a negative idf is replaced by ``epsilon`` (0.25) times the mean idf.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import torch
from torch import Tensor

from llmcourse.checks import check_int, check_non_negative

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The lowercase words of ``text`` (runs of letters, digits and underscores)."""
    return _WORD.findall(text.lower())


class BM25:
    """A BM25 index of a tokenized corpus.

    Args:
        corpus: the documents, each a list of words (e.g. :func:`words` of its text).
        k1, b, epsilon: BM25's parameters (see the module's text).

    Raises:
        ValueError: an empty corpus, a corpus of empty documents only, or bad parameters.
    """

    def __init__(
        self,
        corpus: Sequence[Sequence[str]],
        k1: float = 1.5,
        b: float = 0.75,
        epsilon: float = 0.25,
    ) -> None:
        if isinstance(corpus, str) or not corpus:
            raise ValueError("the corpus is empty: BM25 needs at least one document")
        if any(isinstance(doc, str) for doc in corpus):
            raise TypeError("each document must be a list of words, not a str; use words(text)")
        check_non_negative("k1", k1)
        check_non_negative("epsilon", epsilon)
        if not 0 <= b <= 1:
            raise ValueError(f"b must be in [0, 1], got {b!r}")
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self.term_counts = [Counter(doc) for doc in corpus]
        self.lengths = torch.tensor([len(doc) for doc in corpus], dtype=torch.float64)
        if self.lengths.sum() == 0:
            raise ValueError("every document of the corpus is empty")
        self.avgdl = float(self.lengths.mean())
        document_frequency = Counter(word for counts in self.term_counts for word in counts)
        n = len(corpus)
        self.idf = {
            word: math.log(n - df + 0.5) - math.log(df + 0.5)
            for word, df in document_frequency.items()
        }
        floor = epsilon * sum(self.idf.values()) / len(self.idf)
        self.idf = {word: (floor if idf < 0 else idf) for word, idf in self.idf.items()}

    def __len__(self) -> int:
        return len(self.term_counts)

    def scores(self, query: Sequence[str]) -> Tensor:
        """The BM25 score of every document for ``query`` (a list of words): ``(N,)``
        float64. A word that no document contains adds 0."""
        if isinstance(query, str):
            raise TypeError("the query must be a list of words, not a str; use words(text)")
        norm = self.k1 * (1 - self.b + self.b * self.lengths / self.avgdl)  # (N,)
        total = torch.zeros(len(self), dtype=torch.float64)
        for word in query:
            idf = self.idf.get(word, 0.0)
            if idf == 0.0:
                continue
            tf = torch.tensor([counts[word] for counts in self.term_counts], dtype=torch.float64)
            total += idf * tf * (self.k1 + 1) / (tf + norm)
        return total

    def top_k(self, query: Sequence[str], k: int) -> tuple[Tensor, Tensor]:
        """The ``k`` best documents: ``(scores (k,), indices (k,))``, best first; equal
        scores in index order. ``k`` may not exceed the number of documents."""
        check_int("k", k)
        if k > len(self):
            raise ValueError(f"k must be at most the number of documents ({len(self)}), got {k}")
        return top_k_stable(self.scores(query), k)


def top_k_stable(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` largest of ``scores: (N,)``, largest first, equal scores by index."""
    order = torch.sort(scores, descending=True, stable=True).indices[:k]
    return scores[order], order
