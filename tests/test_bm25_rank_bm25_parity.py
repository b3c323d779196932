"""Our BM25 against the rank_bm25 package's BM25Okapi (a test-only dependency)."""

import random

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from llmcourse.data.knowledge import articles, knowledge_base
from llmcourse.retrieval import BM25, chunk_documents, words


@pytest.mark.parametrize("seed", range(6))
def test_scores_equal_rank_bm25_on_random_corpora(seed):
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(rng.randint(3, 40))]
    corpus = [
        [rng.choice(vocabulary) for _ in range(rng.randint(0, 30))]
        for _ in range(rng.randint(1, 60))
    ]
    if not any(corpus):
        corpus[0] = ["w0"]
    k1, b = rng.uniform(0.5, 2.5), rng.uniform(0.0, 1.0)
    ours, theirs = BM25(corpus, k1=k1, b=b), BM25Okapi(corpus, k1=k1, b=b)
    for _ in range(5):
        query = [rng.choice([*vocabulary, "missing"]) for _ in range(rng.randint(1, 6))]
        np.testing.assert_allclose(
            ours.scores(query).numpy(), theirs.get_scores(query), rtol=1e-12, atol=1e-12
        )


def test_scores_equal_rank_bm25_on_the_knowledge_base_chunks():
    chunks = chunk_documents([text for text, _ in articles(knowledge_base())], 40, 20)
    corpus = [words(c.text) for c in chunks]
    ours, theirs = BM25(corpus), BM25Okapi(corpus)
    for entity in knowledge_base()[:20]:
        query = words(f"Where does the {entity.name} live?")
        np.testing.assert_allclose(ours.scores(query).numpy(), theirs.get_scores(query), rtol=1e-12)
