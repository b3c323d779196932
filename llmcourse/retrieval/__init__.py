"""Retrieval: finding the passages that answer a question (Chapter 11).

- :mod:`.chunking` -- documents cut into overlapping chunks of words.
- :mod:`.bm25` -- the sparse retriever: Okapi BM25 written out (``rank_bm25``'s scores).
- :mod:`.dense` -- the dense retriever: texts embedded by a model, exact cosine top-k
  (``faiss.IndexFlatIP``'s results).
- :mod:`.metrics` -- recall@k.
"""

from llmcourse.retrieval.bm25 import (
    BM25,
    top_k_stable,
    words,
)
from llmcourse.retrieval.chunking import (
    Chunk,
    chunk_documents,
    chunk_words,
)
from llmcourse.retrieval.dense import (
    cosine_top_k,
    embed_texts,
    normalize,
)
from llmcourse.retrieval.metrics import (
    recall_at_k,
)

__all__ = [
    "BM25",
    "Chunk",
    "chunk_documents",
    "chunk_words",
    "cosine_top_k",
    "embed_texts",
    "normalize",
    "recall_at_k",
    "top_k_stable",
    "words",
]
