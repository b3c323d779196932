"""Dense retrieval: texts as vectors, and exact cosine top-k search.

A dense retriever embeds the query and every chunk as vectors and returns the chunks
whose vectors point the most in the query's direction, by **cosine similarity**
``cos(u, v) = u . v / (|u| |v|)``. With every vector normalised to length 1 that is a
dot product, and searching ``N`` chunks for ``Q`` queries is one ``(Q, d) x (d, N)``
matrix product followed by a top-k: exact, and fast up to millions of chunks. Beyond
that, libraries such as ``faiss`` trade exactness for speed with approximate indexes;
``faiss.IndexFlatIP`` over normalised vectors is the exact search of this module.

The vectors come from an encoder; :func:`embed_texts` uses a language model's last
hidden states, averaged over a text's tokens. DPR {Karpukhin et al., 2020} trains two
encoders so that a question lands near its passage; a language model trained only to
predict the next token is not trained for that.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from llmcourse.checks import check_float_tensor, check_int
from llmcourse.generation.generate import eval_no_grad
from llmcourse.models.gpt import GPT
from llmcourse.text.bpe import BPETokenizer


def normalize(vectors: Tensor) -> Tensor:
    """Rows scaled to length 1: ``(n, d) -> (n, d)`` (a zero row stays zero)."""
    check_float_tensor("vectors", vectors, ndim=2)
    return F.normalize(vectors, dim=-1)


def cosine_top_k(queries: Tensor, documents: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` documents most similar to each query, by cosine similarity.

    Args:
        queries: ``(Q, d)`` float vectors.
        documents: ``(N, d)`` float vectors.
        k: how many per query, ``1 <= k <= N``.

    Returns:
        ``(similarities, indices)``, both ``(Q, k)``, most similar first; equal
        similarities in index order.
    """
    check_float_tensor("queries", queries, ndim=2)
    check_float_tensor("documents", documents, ndim=2)
    check_int("k", k)
    if documents.shape[0] == 0:
        raise ValueError("there are no documents to search")
    if k > documents.shape[0]:
        raise ValueError(
            f"k must be at most the number of documents ({documents.shape[0]}), got {k}"
        )
    if queries.shape[1] != documents.shape[1]:
        raise ValueError(
            f"queries have {queries.shape[1]} dimensions but documents {documents.shape[1]}"
        )
    similarities = normalize(queries) @ normalize(documents).T  # (Q, N)
    order = torch.sort(similarities, dim=1, descending=True, stable=True).indices[:, :k]
    return similarities.gather(1, order), order


@torch.no_grad()
def embed_texts(
    model: GPT, tokenizer: BPETokenizer, texts: Sequence[str], batch_size: int = 64
) -> Tensor:
    """``(len(texts), d_model)`` float32: each text's last hidden states
    (:meth:`GPT.hidden_states`), averaged over its tokens. A text is read after
    ``<|endoftext|>``, like a document, and cut to the model's ``block_size``."""
    if isinstance(texts, str) or not texts:
        raise ValueError("texts must be a non-empty list of strings")
    check_int("batch_size", batch_size)
    start = tokenizer.specials.get("<|endoftext|>")
    limit = model.config.block_size
    rows = [([start] if start is not None else []) + tokenizer.encode(t) for t in texts]
    rows = [r[:limit] for r in rows]
    device = next(model.parameters()).device
    vectors = []
    with eval_no_grad(model):
        for s in range(0, len(rows), batch_size):
            batch = rows[s : s + batch_size]
            width = max(map(len, batch))
            idx = torch.tensor([r + [0] * (width - len(r)) for r in batch], device=device)
            real = torch.tensor(
                [[1.0] * len(r) + [0.0] * (width - len(r)) for r in batch], device=device
            )
            hidden = model.hidden_states(idx).float()  # (batch, width, d); padding is after
            vectors.append((hidden * real[..., None]).sum(1) / real.sum(1, keepdim=True))
    return torch.cat(vectors)
