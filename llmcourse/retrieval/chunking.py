"""Cutting documents into chunks, the units a retriever indexes and returns.

A retriever returns passages short enough to fit in the reader's context next to the
question, so long documents are cut into **chunks** of at most ``size`` words. Chunks
overlap by ``overlap`` words, so that a sentence cut by one boundary is whole in the
next chunk: any span of at most ``overlap + 1`` words lies entirely inside some chunk.
The price is redundancy: with ``size = 40`` and ``overlap = 20``, every word is indexed
about twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmcourse.checks import check_int


@dataclass(frozen=True)
class Chunk:
    """A chunk: the document it comes from, the index of its first word, and its text."""

    document: int
    start: int
    text: str


def chunk_words(text: str, size: int, overlap: int = 0) -> list[tuple[int, str]]:
    """``(first word index, text)`` of the chunks of ``text``, split on white space: chunk
    ``j`` starts at word ``j * (size - overlap)``; the last chunk ends with the text.

    >>> chunk_words("a b c d e", size=3, overlap=1)
    [(0, 'a b c'), (2, 'c d e')]

    Raises:
        ValueError: ``size < 1`` or ``overlap`` not in ``[0, size)``.
    """
    check_int("size", size)
    check_int("overlap", overlap, minimum=0)
    if overlap >= size:
        raise ValueError(f"overlap must be smaller than size = {size}, got {overlap}")
    words = text.split()
    step = size - overlap
    chunks = []
    for start in range(0, max(len(words) - overlap, 1), step):
        chunks.append((start, " ".join(words[start : start + size])))
        if start + size >= len(words):
            break
    return [c for c in chunks if c[1]]


def chunk_documents(documents: Sequence[str], size: int, overlap: int = 0) -> list[Chunk]:
    """Every document cut by :func:`chunk_words`, in order; an empty corpus is an error."""
    if isinstance(documents, str) or not documents:
        raise ValueError("documents must be a non-empty list of strings")
    return [
        Chunk(d, start, text)
        for d, document in enumerate(documents)
        for start, text in chunk_words(document, size, overlap)
    ]
