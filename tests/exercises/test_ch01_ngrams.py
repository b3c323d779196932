"""Grading tests for the Chapter 1 exercises (solutions/ch01_ngrams.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``: the points of
a parametrized test are shared by its cases, and an answer's points add up to those
announced in the notebook's heading. Inputs come from the grammar corpus with a fresh
seed, and the expected values from ``llmcourse.classic.ngram`` (itself checked against
``nltk.lm``) or from hand computation.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch

from llmcourse.classic import NGramLM
from llmcourse.data import english_grammar
from llmcourse.grading.expect import expect_float, expect_type

NOTEBOOK = "ch01_ngrams"

# What each answer must write itself (see llmcourse.grading.offlimits), besides the
# package's functions named like the answers; and the code standing in for count_ngrams
# when mle_next_word is graded, so that a mistake in count_ngrams costs points only once.
NGRAM_MODEL = "llmcourse.classic.ngram.NGramLM"
OFF_LIMITS = {
    "count_ngrams": [NGRAM_MODEL, "llmcourse.classic.ngram.ngrams"],
    "mle_next_word": [NGRAM_MODEL],
    "add_k_prob": [NGRAM_MODEL],
    "perplexity": [NGRAM_MODEL],
}
STAND_INS = {
    "count_ngrams": """
def count_ngrams(sentences, n):
    counts = Counter()
    for sentence in sentences:
        padded = [BOS] * (n - 1) + list(sentence) + [EOS]
        counts.update(tuple(padded[i : i + n]) for i in range(len(padded) - n + 1))
    return counts
"""
}
GRAMMAR = english_grammar()


def corpus(seed: int, n: int = 60) -> list[list[str]]:
    return [s.tokens for s in GRAMMAR.generate(n, seed=seed)]


def reference_counts(sentences: list[list[str]], n: int) -> Counter:
    lm = NGramLM(n, smoothing="mle").fit(sentences)
    return Counter(
        {
            context + (word,): c
            for context, words in lm.counts[n].items()
            for word, c in words.items()
        }
    )


@pytest.mark.exercise(
    "count_ngrams",
    points=0.5,
    hint="Pad each sentence with n - 1 '<s>' on the left and one '</s>' on the right, "
    "then count every window of n symbols as a tuple.",
)
def test_count_ngrams_hand_example(student):
    got = student.call("count_ngrams", [["a", "b"]], 2)
    expect_type(got, dict, what="count_ngrams([['a', 'b']], 2)")
    assert got == Counter({("<s>", "a"): 1, ("a", "b"): 1, ("b", "</s>"): 1})
    assert student.call("count_ngrams", [["a", "a"], ["a"]], 1) == Counter(
        {("a",): 3, ("</s>",): 2}
    )


@pytest.mark.exercise(
    "count_ngrams",
    points=1,
    hint="For n = 1 there is no '<s>' at all, but '</s>' is still counted once per sentence.",
)
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_count_ngrams_matches_reference(student, fresh_seed, n):
    sentences = corpus(fresh_seed)
    got = student.call("count_ngrams", sentences, n)
    assert dict(got) == dict(reference_counts(sentences, n)), f"corpus seed {fresh_seed}"


@pytest.mark.exercise("count_ngrams", points=0.5, hint="Raise ValueError when n is 0 or negative.")
@pytest.mark.parametrize("n", [0, -1])
def test_count_ngrams_rejects_bad_order(student, n):
    with pytest.raises(ValueError):
        student.call("count_ngrams", [["a"]], n)


@pytest.mark.exercise(
    "mle_next_word",
    points=1,
    hint="Divide count(context + w) by the number of times the context is followed by "
    "anything; return {} for a context that never occurs.",
)
def test_mle_next_word_students_opened_their(student):
    sentences = [["students", "opened", "their", "books"]] * 3 + [
        ["students", "opened", "their", "exams"],
        ["teachers", "opened", "their", "books"],
    ]
    got = student.call("mle_next_word", sentences, ["students", "opened", "their"])
    expect_type(got, dict, what="mle_next_word(...)")
    assert got.keys() == {"books", "exams"}
    assert got["books"] == pytest.approx(3 / 4) and got["exams"] == pytest.approx(1 / 4)
    assert student.call("mle_next_word", sentences, ["nobody", "opened", "their"]) == {}


@pytest.mark.exercise(
    "mle_next_word",
    points=2,
    hint="Use n = len(context) + 1 and pad the sentences exactly as count_ngrams does.",
)
@pytest.mark.parametrize("order", [2, 3])
def test_mle_next_word_matches_reference(student, fresh_seed, order):
    sentences = corpus(fresh_seed)
    lm = NGramLM(order, smoothing="mle").fit(sentences)
    rng = random.Random(fresh_seed)
    for context in rng.sample(sorted(lm.counts[order]), 5):
        expected = {w: p for w, p in lm.distribution(context).items() if p > 0}
        got = student.call("mle_next_word", sentences, list(context))
        expect_type(got, dict, what="mle_next_word(...)")
        assert got.keys() == expected.keys(), f"context {context}, corpus seed {fresh_seed}"
        for word, p in expected.items():
            assert got[word] == pytest.approx(p, rel=1e-9), f"P({word} | {context})"


@pytest.mark.exercise(
    "add_k_prob",
    points=1,
    hint="count(h) is the total count of the n-grams that start with the context; "
    "an unseen context gives the uniform distribution 1 / vocab_size.",
)
def test_add_k_prob_hand_example(student):
    counts = Counter({("x", "a"): 3, ("x", "b"): 1, ("y", "a"): 2})
    # (3 + 0.5) / (4 + 0.5 * 5) and an unseen word (0 + 0.5) / (4 + 0.5 * 5)
    expect_float(student.call("add_k_prob", counts, ["x"], "a", 5, 0.5), 3.5 / 6.5, what="P(a | x)")
    expect_float(student.call("add_k_prob", counts, ["x"], "c", 5, 0.5), 0.5 / 6.5, what="P(c | x)")
    # an unseen context gives the uniform distribution
    expect_float(student.call("add_k_prob", counts, ["z"], "a", 5, 2.0), 1 / 5, what="P(a | z)")


@pytest.mark.exercise(
    "add_k_prob",
    points=1,
    hint="The counts are those of count_ngrams on the whole corpus: n-grams of the "
    "context with any word add up to count(h).",
)
@pytest.mark.parametrize("k", [1.0, 0.1])
def test_add_k_prob_matches_reference(student, fresh_seed, k):
    sentences = corpus(fresh_seed)
    lm = NGramLM(3, smoothing="add_k", k=k).fit(sentences)
    counts = reference_counts(sentences, 3)
    rng = random.Random(fresh_seed)
    for _ in range(10):
        context = list(rng.choice(sorted(lm.counts[3])))
        word = rng.choice(GRAMMAR.words + ["</s>"])
        expected = lm.prob(word, context)
        got = student.call("add_k_prob", counts, context, word, len(lm.vocab), k)
        expect_float(got, expected, rel=1e-9, what=f"P({word} | {context}) with k={k}")


@pytest.mark.exercise(
    "add_k_prob", points=1, hint="Raise ValueError when k <= 0 or vocab_size < 1."
)
@pytest.mark.parametrize(("vocab_size", "k"), [(5, 0.0), (5, -1.0), (0, 1.0)])
def test_add_k_prob_rejects_bad_arguments(student, vocab_size, k):
    with pytest.raises(ValueError):
        student.call("add_k_prob", Counter({("a", "b"): 1}), ["a"], "b", vocab_size, k)


@pytest.mark.exercise(
    "perplexity", points=1, hint="Perplexity is exp of the mean of -log p over the tokens."
)
def test_perplexity_matches_reference(student, fresh_seed):
    generator = torch.Generator().manual_seed(fresh_seed)
    probs = torch.rand(50, generator=generator, dtype=torch.float64).clamp_min(1e-6)
    expected = torch.exp(-torch.log(probs).mean()).item()
    expect_float(student.call("perplexity", probs.tolist()), expected, what="the perplexity")
    expect_float(student.call("perplexity", [0.25] * 8), 4.0, what="perplexity([0.25] * 8)")


@pytest.mark.exercise(
    "perplexity",
    points=0.5,
    hint="Sum logarithms instead of multiplying probabilities: the product underflows to 0.",
)
def test_perplexity_long_text_does_not_underflow(student):
    got = student.call("perplexity", [1e-5] * 100_000)
    expect_float(got, 1e5, what="perplexity([1e-5] * 100_000)")


@pytest.mark.exercise(
    "perplexity",
    points=0.5,
    hint="Return math.inf when a probability is 0; raise ValueError for an empty list "
    "or a probability outside [0, 1].",
)
def test_perplexity_edge_cases(student):
    expect_float(student.call("perplexity", [0.5, 0.0]), math.inf, what="perplexity([0.5, 0.0])")
    for bad in ([], [1.5], [-0.1]):
        with pytest.raises(ValueError):
            student.call("perplexity", bad)
