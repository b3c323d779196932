"""Chunking, BM25, dense top-k and recall@k (llmcourse.retrieval)."""

import math

import pytest
import torch

from llmcourse.retrieval import (
    BM25,
    chunk_documents,
    chunk_words,
    cosine_top_k,
    embed_texts,
    recall_at_k,
    words,
)
from llmcourse.retrieval.bm25 import top_k_stable


def test_chunk_words_by_hand():
    assert chunk_words("a b c d e", 3, 1) == [(0, "a b c"), (2, "c d e")]
    assert chunk_words("a b c d e f", 3, 1) == [(0, "a b c"), (2, "c d e"), (4, "e f")]
    assert chunk_words("a b", 5, 2) == [(0, "a b")]
    assert chunk_words("a b c d", 2) == [(0, "a b"), (2, "c d")]
    assert chunk_words("", 3) == []
    with pytest.raises(ValueError, match="overlap must be smaller than size"):
        chunk_words("a b", 2, 2)


@pytest.mark.parametrize(("size", "overlap"), [(5, 2), (8, 3), (4, 0), (6, 5)])
def test_every_span_of_overlap_plus_one_words_is_inside_a_chunk(size, overlap):
    text = " ".join(f"w{i}" for i in range(37))
    chunks = chunk_words(text, size, overlap)
    covered = [(start, start + len(t.split())) for start, t in chunks]
    assert covered[-1][1] == 37 and all(b - a <= size for a, b in covered)
    for first in range(37 - overlap):
        assert any(a <= first and first + overlap + 1 <= b for a, b in covered)


def test_chunk_documents():
    chunks = chunk_documents(["a b c d", "e f"], 3, 1)
    assert [(c.document, c.start, c.text) for c in chunks] == [
        (0, 0, "a b c"),
        (0, 2, "c d"),
        (1, 0, "e f"),
    ]
    with pytest.raises(ValueError, match="non-empty list"):
        chunk_documents([], 3)


def test_bm25_by_hand():
    corpus = [["the", "cat"], ["the", "dog", "dog"], ["a", "bird"]]
    index = BM25(corpus)
    n, avgdl, k1, b = 3, 7 / 3, 1.5, 0.75
    idf_dog = math.log((n - 1 + 0.5) / (1 + 0.5))
    tf, length = 2, 3
    expected = idf_dog * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))
    assert index.scores(["dog"]).tolist() == pytest.approx([0.0, expected, 0.0])
    # "the" is in 2 of 3 documents: ln(1.5 / 2.5) < 0 is floored at 0.25 x the mean idf.
    idfs = [math.log(1.5 / 2.5)] + [math.log(2.5 / 1.5)] * 4  # the, cat, dog, a, bird
    assert index.idf["the"] == pytest.approx(0.25 * sum(idfs) / 5)
    assert index.scores(["unknown"]).tolist() == [0.0, 0.0, 0.0]
    assert index.scores(["dog", "dog"])[1].item() == pytest.approx(2 * expected)
    scores, top = index.top_k(["bird", "cat"], 2)
    assert top.tolist() in ([0, 2], [2, 0]) and scores[0] >= scores[1]


def test_bm25_errors():
    with pytest.raises(ValueError, match="the corpus is empty"):
        BM25([])
    with pytest.raises(ValueError, match="every document of the corpus is empty"):
        BM25([[], []])
    with pytest.raises(TypeError, match="list of words, not a str"):
        BM25(["the cat"])
    index = BM25([["a"], ["b"]])
    with pytest.raises(ValueError, match="k must be at most the number of documents \\(2\\)"):
        index.top_k(["a"], 3)
    with pytest.raises(TypeError, match="use words"):
        index.scores("a")
    assert words("The Zorvik eats 3 apples.") == ["the", "zorvik", "eats", "3", "apples"]


def test_top_k_stable_breaks_ties_by_index():
    scores, order = top_k_stable(torch.tensor([1.0, 3.0, 3.0, 2.0]), 3)
    assert order.tolist() == [1, 2, 3] and scores.tolist() == [3.0, 3.0, 2.0]


def test_cosine_top_k_by_hand():
    documents = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-1.0, 0.0]])
    queries = torch.tensor([[3.0, 0.1], [0.0, -1.0]])
    sims, idx = cosine_top_k(queries, documents, 2)
    assert idx.tolist() == [[0, 2], [0, 3]]  # the second query: cos 0 ties, index order
    assert sims[0, 1].item() == pytest.approx((3.0 + 0.1) / (math.hypot(3.0, 0.1) * math.sqrt(2)))
    with pytest.raises(ValueError, match="at most the number of documents \\(4\\)"):
        cosine_top_k(queries, documents, 5)
    with pytest.raises(ValueError, match="no documents"):
        cosine_top_k(queries, torch.zeros(0, 2), 1)
    with pytest.raises(ValueError, match="queries have 3 dimensions but documents 2"):
        cosine_top_k(torch.zeros(1, 3), documents, 1)


def test_recall_at_k_by_hand():
    rankings = [[3, 1, 2], [0, 2, 1], [2, 0, 1]]
    relevant = [{1}, {1, 5}, {2}]
    assert recall_at_k(rankings, relevant, 1) == pytest.approx(1 / 3)
    assert recall_at_k(rankings, relevant, 2) == pytest.approx(2 / 3)
    assert recall_at_k(rankings, relevant, 3) == 1.0
    with pytest.raises(ValueError, match="fewer than k=4"):
        recall_at_k(rankings, relevant, 4)
    with pytest.raises(ValueError, match="no relevant item"):
        recall_at_k([[1]], [set()], 1)
    with pytest.raises(ValueError, match="one ranking per query"):
        recall_at_k([], [], 1)


def test_embed_texts_averages_the_hidden_states_of_each_text_alone():
    from tiny_models import random_gpt

    from llmcourse.models import load_pretrained

    tokenizer = load_pretrained()[1]
    model = random_gpt(vocab_size=len(tokenizer), block_size=32).eval()
    texts = ["the cat sleeps", "a dog", "many clever writers read the books"]
    vectors = embed_texts(model, tokenizer, texts, batch_size=2)
    assert vectors.shape == (3, 16)
    for text, vector in zip(texts, vectors, strict=True):
        ids = torch.tensor([[tokenizer.specials["<|endoftext|>"], *tokenizer.encode(text)]])
        assert torch.allclose(vector, model.hidden_states(ids)[0].mean(0), atol=1e-5)
