"""Exact cosine top-k against faiss's exact inner-product index (a test-only dependency)."""

import faiss
import numpy as np
import pytest
import torch

from llmcourse.retrieval import cosine_top_k


@pytest.mark.parametrize("seed", range(5))
def test_cosine_top_k_equals_faiss_index_flat_ip_on_normalised_vectors(seed):
    g = torch.Generator().manual_seed(seed)
    n, d, q = (
        int(torch.randint(5, 300, (1,), generator=g)),
        int(torch.randint(2, 64, (1,), generator=g)),
        20,
    )
    documents = torch.randn(n, d, generator=g)
    queries = torch.randn(q, d, generator=g)
    k = int(torch.randint(1, n + 1, (1,), generator=g))
    sims, idx = cosine_top_k(queries, documents, k)
    index = faiss.IndexFlatIP(d)
    docs = documents.numpy().copy()
    faiss.normalize_L2(docs)
    index.add(docs)
    queries_np = queries.numpy().copy()
    faiss.normalize_L2(queries_np)
    their_sims, their_idx = index.search(queries_np, k)
    np.testing.assert_array_equal(idx.numpy(), their_idx)  # random vectors: no ties
    np.testing.assert_allclose(sims.numpy(), their_sims, rtol=1e-4, atol=1e-5)
