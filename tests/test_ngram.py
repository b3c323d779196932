"""Unit tests for llmcourse.classic.ngram: counting, smoothing, perplexity and sampling.

Most expected values are worked out by hand on the tiny corpus ``TOY`` below; the
derivations are in the comments. Parity with an independent implementation (nltk.lm) on
larger data is in ``test_ngram_nltk_parity.py``.
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction as F

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.classic import NGramLM, ngrams, pad
from llmcourse.data import english_grammar

# Padded for order 2:  <s> a b </s>  |  <s> a c </s>  |  <s> b b </s>
# word counts: b 3, a 2, c 1;  V = {<unk>, </s>, b, a, c}, |V| = 5
# bigram counts:  <s> -> a 2, b 1 (3)   a -> b 1, c 1 (2)   b -> </s> 2, b 1 (3)   c -> </s> 1 (1)
# unigram counts (predicted tokens): a 2, b 3, c 1, </s> 3 (9)
TOY = [["a", "b"], ["a", "c"], ["b", "b"]]

STUDENTS = [["students", "opened", "their", "books"]] * 3 + [
    ["students", "opened", "their", "exams"]
]


def fit(order: int, smoothing: str = "mle", data=TOY, **kwargs) -> NGramLM:
    min_count = kwargs.pop("min_count", 1)
    return NGramLM(order, smoothing, **kwargs).fit(data, min_count=min_count)


def close(x: float, y) -> bool:
    return math.isclose(x, float(y), rel_tol=1e-12, abs_tol=1e-15)


# ------------------------------------------------------------------ helpers


def test_ngrams_examples():
    tokens = ["students", "opened", "their", "books"]
    assert ngrams(tokens, 3) == [("students", "opened", "their"), ("opened", "their", "books")]
    assert ngrams(tokens, 1) == [(t,) for t in tokens]
    assert ngrams(tokens, 4) == [tuple(tokens)]
    assert ngrams(tokens, 5) == []
    assert ngrams([], 2) == []
    assert ngrams(("a", "b", "c"), 2) == [("a", "b"), ("b", "c")]


@pytest.mark.parametrize("bad", [0, -1, "2", 1.5, None])
def test_ngrams_rejects_bad_n(bad):
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        ngrams(["a", "b"], bad)


def test_pad():
    assert pad(["a", "b"], 3) == ["<s>", "<s>", "a", "b", "</s>"]
    assert pad(["a"], 1) == ["a", "</s>"]
    assert pad([], 2) == ["<s>", "</s>"]
    assert pad(("x",), 4) == ["<s>"] * 3 + ["x", "</s>"]


# ------------------------------------------------------------------ counting


def test_counts_on_the_toy_corpus():
    lm = fit(2)
    assert lm.vocab.itos == ["<unk>", "</s>", "b", "a", "c"]
    assert lm.counts[2][("<s>",)] == Counter({"a": 2, "b": 1})
    assert lm.counts[2][("a",)] == Counter({"b": 1, "c": 1})
    assert lm.counts[2][("b",)] == Counter({"</s>": 2, "b": 1})
    assert lm.counts[2][("c",)] == Counter({"</s>": 1})
    assert set(lm.counts[2]) == {("<s>",), ("a",), ("b",), ("c",)}
    assert lm.counts[1] == {(): Counter({"a": 2, "b": 3, "c": 1, "</s>": 3})}
    assert lm.continuation == {}  # only Kneser-Ney needs them


def test_counts_order_3_include_lower_orders():
    lm = fit(3)
    assert lm.counts[3][("<s>", "<s>")] == Counter({"a": 2, "b": 1})
    assert lm.counts[3][("<s>", "a")] == Counter({"b": 1, "c": 1})
    assert lm.counts[3][("a", "b")] == Counter({"</s>": 1})
    assert lm.counts[3][("b", "b")] == Counter({"</s>": 1})
    # the bigram and unigram counts are those of the order-2 model
    assert lm.counts[2] == fit(2).counts[2]
    assert lm.counts[1] == fit(2).counts[1]
    # '<s>' is never predicted
    assert all("<s>" not in c for m in lm.counts for c in lm.counts[m].values())


def test_continuation_counts():
    lm = fit(3, "kneser_ney")
    # trigram types: <s><s>a <s><s>b <s>ab <s>ac ab</s> ac</s> <s>bb bb</s>
    assert lm.continuation[2][("<s>",)] == Counter({"a": 1, "b": 1})
    assert lm.continuation[2][("a",)] == Counter({"b": 1, "c": 1})
    assert lm.continuation[2][("b",)] == Counter({"</s>": 2, "b": 1})
    # bigram types: <s>a <s>b ab ac b</s> bb c</s>: number of distinct words before w
    assert lm.continuation[1][()] == Counter({"a": 1, "b": 3, "c": 1, "</s>": 2})


def test_min_count_maps_rare_words_to_unk():
    lm = fit(2, min_count=2)  # c occurs once
    assert lm.vocab.itos == ["<unk>", "</s>", "b", "a"]
    assert lm.counts[2][("a",)] == Counter({"b": 1, "<unk>": 1})
    assert lm.counts[2][("<unk>",)] == Counter({"</s>": 1})
    assert lm.prob("c", ["a"]) == lm.prob("<unk>", ["a"]) == lm.prob("zebra", ["a"]) == 0.5
    assert lm.prob("</s>", ["c"]) == lm.prob("</s>", ["<unk>"]) == 1.0


def test_fit_returns_self_and_refit_replaces_the_counts():
    lm = NGramLM(2, "mle")
    assert lm.fit(TOY) is lm
    lm.fit([["x"]])
    assert lm.vocab.itos == ["<unk>", "</s>", "x"]
    assert lm.prob("x") == 1.0 and lm.prob("a") == 0.0


def test_fit_accepts_generators_of_tuples():
    lm = NGramLM(2, "mle").fit(tuple(s) for s in TOY)
    assert lm.counts == fit(2).counts


# ------------------------------------------------------------- probabilities


def test_mle_probabilities():
    lm = fit(2)
    assert close(lm.prob("a", ["<s>"]), F(2, 3))
    assert close(lm.prob("a"), F(2, 3))  # empty context = sentence start
    assert close(lm.prob("b", ["a"]), F(1, 2))
    assert close(lm.prob("</s>", ["b"]), F(2, 3))
    assert close(lm.prob("</s>", ["c"]), 1)
    assert lm.prob("a", ["b"]) == 0.0  # unseen bigram
    assert lm.prob("a", ["zebra"]) == 0.0  # unseen context
    assert lm.prob("zebra", ["a"]) == 0.0  # <unk> never seen
    # log P(a b </s>) = log(2/3 * 1/2 * 2/3) = log(2/9)
    assert close(lm.log_prob(["a", "b"]), math.log(2 / 9))
    assert lm.log_prob(["b", "a"]) == -math.inf


def test_mle_unigram_and_trigram():
    uni = fit(1)
    for w, p in {"a": F(2, 9), "b": F(3, 9), "c": F(1, 9), "</s>": F(3, 9), "<unk>": 0}.items():
        assert close(uni.prob(w, ["anything", "at", "all"]), p)
    tri = fit(3)
    assert close(tri.prob("b", ["a"]), F(1, 2))  # context <s> a
    assert close(tri.prob("</s>", ["a", "b"]), 1)
    assert tri.prob("b", ["a", "b"]) == 0.0


def test_students_opened_their():
    lm = NGramLM(4, "mle").fit(STUDENTS)
    assert lm.prob("books", ["students", "opened", "their"]) == 3 / 4
    assert lm.prob("exams", ["students", "opened", "their"]) == 1 / 4
    assert lm.prob("students") == 1.0
    assert lm.prob("</s>", ["opened", "their", "exams"]) == 1.0
    # only the last three words count
    assert lm.prob("books", ["yesterday", "students", "opened", "their"]) == 3 / 4
    assert lm.distribution(["students", "opened", "their"]) == {
        "books": 0.75,
        "exams": 0.25,
        "</s>": 0.0,
        "<unk>": 0.0,
        "opened": 0.0,
        "students": 0.0,
        "their": 0.0,
    }


def test_laplace_probabilities():
    lm = fit(2, "add_k", k=1.0)
    # (c(h, w) + 1) / (c(h) + |V|), |V| = 5
    assert close(lm.prob("b", ["a"]), F(2, 7))
    assert close(lm.prob("a", ["b"]), F(1, 8))
    assert close(lm.prob("a", []), F(3, 8))
    assert close(lm.prob("</s>", ["c"]), F(2, 6))
    assert close(lm.prob("zebra", ["a"]), F(1, 7))
    assert close(lm.prob("a", ["zebra"]), F(1, 5))  # unseen context: uniform
    assert close(lm.log_prob(["a", "b"]), math.log(3 / 8 * 2 / 7 * 3 / 8))
    tri = fit(3, "add_k", k=1.0)
    assert close(tri.prob("a", []), F(3, 8))
    assert close(tri.prob("c", ["a"]), F(2, 7))  # context <s> a: c 1 of 2


def test_lidstone_probabilities():
    lm = fit(2, "add_k", k=0.5)
    # (c(h, w) + 0.5) / (c(h) + 0.5 * 5)
    assert close(lm.prob("b", ["a"]), F(3, 2) / F(9, 2))
    assert close(lm.prob("</s>", ["b"]), F(5, 2) / F(11, 2))
    assert close(lm.prob("<unk>", ["<s>"]), F(1, 2) / F(11, 2))
    uni = fit(1, "add_k", k=0.5)
    assert close(uni.prob("b"), F(7, 2) / F(23, 2))  # (3 + .5) / (9 + 2.5)


def test_docstring_example():
    lm = NGramLM(order=2, smoothing="add_k", k=0.5).fit([["a", "b"], ["a", "c"]])
    assert close(lm.prob("b", ["a"]), F(3, 2) / F(9, 2))


def test_kneser_ney_bigram_probabilities():
    lm = fit(2, "kneser_ney", discount=0.75)
    # continuation unigram: distinct predecessors / number of bigram types (7):
    #   P1(a) = 1/7, P1(b) = 3/7, P1(c) = 1/7, P1(</s>) = 2/7, P1(<unk>) = 0
    # context a: counts b 1, c 1 (total 2, 2 types): gamma = 0.75 * 2 / 2 = 3/4
    #   P(b | a) = (1 - .75) / 2 + 3/4 * 3/7 = 1/8 + 9/28 = 25/56
    #   P(c | a) = 1/8 + 3/4 * 1/7 = 13/56;  P(a | a) = 3/28;  P(</s> | a) = 3/14
    assert close(lm.prob("b", ["a"]), F(25, 56))
    assert close(lm.prob("c", ["a"]), F(13, 56))
    assert close(lm.prob("a", ["a"]), F(3, 28))
    assert close(lm.prob("</s>", ["a"]), F(3, 14))
    assert lm.prob("<unk>", ["a"]) == 0.0
    # context b: counts </s> 2, b 1 (total 3, 2 types): gamma = 0.75 * 2 / 3 = 1/2
    #   P(b | b) = .25 / 3 + 1/2 * 3/7 = 25/84;  P(</s> | b) = 1.25 / 3 + 1/2 * 2/7 = 47/84
    assert close(lm.prob("b", ["b"]), F(25, 84))
    assert close(lm.prob("</s>", ["b"]), F(47, 84))
    # unseen context: the continuation unigram itself
    for w, p in {"a": F(1, 7), "b": F(3, 7), "c": F(1, 7), "</s>": F(2, 7)}.items():
        assert close(lm.prob(w, ["zebra"]), p)


def test_kneser_ney_trigram_probabilities():
    lm = fit(3, "kneser_ney", discount=0.75)
    # P(</s> | a b): top counts {</s>: 1}: alpha = .25, gamma = .75;
    #   middle order, continuation counts after b: {</s>: 2, b: 1} (total 3, 2 types):
    #   P2(</s> | b) = 1.25 / 3 + (.75 * 2 / 3) * 2/7 = 47/84
    #   P = 1/4 + 3/4 * 47/84 = 75/112
    assert close(lm.prob("</s>", ["a", "b"]), F(75, 112))
    # P(a | <s> <s>): top counts {a: 2, b: 1}: alpha = 1.25 / 3, gamma = .75 * 2 / 3 = 1/2;
    #   middle order uses continuation counts after <s>, {a: 1, b: 1} (raw counts are 2, 1):
    #   P2(a | <s>) = .25 / 2 + .75 * 1/7 = 13/56
    #   P = 5/12 + 1/2 * 13/56 = 179/336
    assert close(lm.prob("a", []), F(179, 336))
    # unseen trigram context (c b) defers to P2(b | b) = .25 / 3 + 1/2 * 3/7 = 25/84
    assert close(lm.prob("b", ["c", "b"]), F(25, 84))


def test_kneser_ney_gives_unknown_words_zero_probability_without_unk_in_training():
    # The recursion ends with continuation counts, and <unk> never follows anything when
    # every training word is kept: unknown words get probability 0 and log_prob -inf.
    lm = fit(2, "kneser_ney")
    assert lm.prob("zebra", ["a"]) == 0.0
    assert lm.log_prob(["a", "zebra"]) == -math.inf
    # with min_count=2, c becomes <unk> in training and unknown words get mass
    lm2 = fit(2, "kneser_ney", min_count=2)
    assert lm2.prob("zebra", ["a"]) > 0
    assert math.isfinite(lm2.log_prob(["a", "zebra"]))


def test_short_contexts_are_padded_with_sentence_starts():
    for smoothing in ("mle", "add_k", "kneser_ney"):
        lm = fit(3, smoothing)
        for w in ["a", "b", "c", "</s>", "zebra"]:
            assert lm.prob(w, []) == lm.prob(w, ["<s>", "<s>"])
            assert lm.prob(w, ["a"]) == lm.prob(w, ["<s>", "a"])
            assert lm.prob(w, ["x", "y", "a", "b"]) == lm.prob(w, ["a", "b"])
            assert lm.prob(w, ["a", "zebra"]) == lm.prob(w, ["a", "<unk>"])


def test_distribution_matches_prob_and_is_sorted():
    lm = fit(3, "kneser_ney")
    dist = lm.distribution(["a"])
    assert set(dist) == set(lm.vocab.itos)
    assert all(dist[w] == lm.prob(w, ["a"]) for w in dist)
    values = list(dist.values())
    assert values == sorted(values, reverse=True)
    assert math.isclose(sum(values), 1.0, abs_tol=1e-12)


def test_mle_distribution_sums_to_one_for_seen_contexts_and_zero_for_unseen():
    lm = fit(3)
    for context in ([], ["a"], ["b"], ["a", "b"], ["b", "b"]):
        assert math.isclose(sum(lm.distribution(context).values()), 1.0, abs_tol=1e-12)
    for context in (["c", "a"], ["zebra"], ["b", "a"]):
        assert sum(lm.distribution(context).values()) == 0.0


sentence = st.lists(st.sampled_from("abcd"), min_size=0, max_size=6)
corpus = st.lists(sentence, min_size=1, max_size=8).filter(any)
context = st.lists(st.sampled_from(["a", "b", "c", "d", "zebra", "</s>", "<s>"]), max_size=5)


@settings(max_examples=150, deadline=None)
@given(
    corpus,
    st.integers(1, 4),
    st.sampled_from(["add_k", "kneser_ney"]),
    st.floats(0.01, 3.0),
    st.floats(0.05, 0.95),
    st.integers(1, 2),
    st.lists(context, min_size=1, max_size=4),
)
def test_distribution_sums_to_one(data, order, smoothing, k, discount, min_count, contexts):
    if smoothing == "kneser_ney" and order == 1:
        order = 2
    lm = NGramLM(order, smoothing, k=k, discount=discount).fit(data, min_count=min_count)
    for ctx in contexts:
        dist = lm.distribution(ctx)
        assert set(dist) == set(lm.vocab.itos)
        assert all(p >= 0 for p in dist.values())
        assert math.isclose(sum(dist.values()), 1.0, abs_tol=1e-9)


@settings(max_examples=50, deadline=None)
@given(corpus, st.integers(1, 4), st.sampled_from(["mle", "add_k", "kneser_ney"]), sentence)
def test_log_prob_is_the_sum_of_conditional_log_probs(data, order, smoothing, test_sentence):
    order = max(order, 2) if smoothing == "kneser_ney" else order
    lm = NGramLM(order, smoothing).fit(data)
    probs = [lm.prob(w, test_sentence[:t]) for t, w in enumerate(test_sentence)]
    probs.append(lm.prob("</s>", test_sentence))
    expected = -math.inf if min(probs) == 0 else sum(math.log(p) for p in probs)
    assert lm.log_prob(test_sentence) == pytest.approx(expected, rel=1e-12, abs=1e-12)


# ----------------------------------------------------------------- perplexity


def test_perplexity_of_a_uniform_model():
    # unigram MLE on "a b c": a, b, c and </s> all have probability 1/4
    lm = NGramLM(1, "mle").fit([["a", "b", "c"]])
    test = [["c", "a"], ["b"], []]
    assert close(lm.cross_entropy(test), math.log(4))
    assert close(lm.perplexity(test), 4)


def test_perplexity_hand_computed():
    # unigram MLE on [a], [b]: P(a) = P(b) = 1/4, P(</s>) = 1/2
    # log P([a]) = log P([b]) = -log 8 over 2 tokens each: cross-entropy = log(8) / 2
    lm = NGramLM(1, "mle").fit([["a"], ["b"]])
    assert close(lm.cross_entropy([["a"], ["b"]]), math.log(8) / 2)
    assert close(lm.perplexity([["a"], ["b"]]), math.sqrt(8))


def test_perplexity_is_exp_cross_entropy():
    train = [s.tokens for s in english_grammar().generate(300, seed=0)]
    test = [s.tokens for s in english_grammar().generate(50, seed=1)]
    for smoothing in ("add_k", "kneser_ney"):
        lm = NGramLM(3, smoothing).fit(train, min_count=2)
        h = lm.cross_entropy(test)
        assert close(lm.perplexity(test), math.exp(h))
        n_tokens = sum(len(s) + 1 for s in test)
        assert close(h, -sum(lm.log_prob(s) for s in test) / n_tokens)
        assert 1 < lm.perplexity(test) < len(lm.vocab)


def test_mle_perplexity_is_infinite_on_unseen_events():
    lm = fit(2)
    assert lm.cross_entropy([["b", "a"]]) == math.inf
    assert lm.perplexity([["b", "a"]]) == math.inf


def test_cross_entropy_on_an_empty_corpus_raises():
    with pytest.raises(ValueError, match="empty corpus"):
        fit(2, "add_k").cross_entropy([])


# ------------------------------------------------------------------- sampling


def test_generate_is_deterministic_per_seed():
    lm = fit(2, "add_k")
    assert lm.generate(seed=3) == lm.generate(seed=3)
    assert lm.generate(seed=3) == fit(2, "add_k").generate(seed=3)
    outputs = {tuple(lm.generate(seed=s)) for s in range(20)}
    assert len(outputs) > 5  # seeds do matter


def test_generate_reproduces_training_sentences_under_mle():
    lm = NGramLM(4, "mle").fit(STUDENTS)
    outputs = [lm.generate(seed=s) for s in range(200)]
    books = ["students", "opened", "their", "books"]
    exams = ["students", "opened", "their", "exams"]
    # stops at </s>: every output is a complete training sentence, without </s>
    assert all(o in (books, exams) for o in outputs)
    # P(books) = 3/4: 150 expected out of 200, standard deviation ~6.1
    assert 120 < sum(o == books for o in outputs) < 180


def test_generate_with_a_prompt():
    lm = NGramLM(4, "mle").fit(STUDENTS)
    assert lm.generate(seed=0, context=["students", "opened", "their"]) in (["books"], ["exams"])
    assert lm.generate(seed=0, context=["students", "opened"])[0] == "their"


def test_generate_respects_max_words():
    lm = NGramLM(4, "mle").fit(STUDENTS)
    assert lm.generate(max_words=2, seed=0) == ["students", "opened"]
    assert lm.generate(max_words=0, seed=0) == []
    # a near-uniform model rarely picks </s>: most samples hit the limit
    flat = fit(2, "add_k", k=1000.0)
    lengths = [len(flat.generate(max_words=3, seed=s)) for s in range(30)]
    assert max(lengths) == 3 and all(n <= 3 for n in lengths)
    assert all("</s>" not in flat.generate(max_words=10, seed=s) for s in range(30))


@pytest.mark.parametrize("bad", [-1, 2.5, "3"])
def test_generate_rejects_bad_max_words(bad):
    with pytest.raises(ValueError, match="max_words must be a non-negative integer"):
        fit(2, "add_k").generate(max_words=bad)


# --------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [0, -1, "2", True, False, 2.0, None])
def test_bad_order(bad):
    with pytest.raises(ValueError, match="order must be an integer >= 1"):
        NGramLM(bad)


def test_unknown_smoothing():
    with pytest.raises(ValueError, match="smoothing must be one of"):
        NGramLM(2, "laplace")


@pytest.mark.parametrize("k", [0, 0.0, -1.0])
def test_k_must_be_positive_for_add_k(k):
    with pytest.raises(ValueError, match="k must be > 0"):
        NGramLM(2, "add_k", k=k)
    NGramLM(2, "mle", k=k)  # k is only checked where it is used


@pytest.mark.parametrize("d", [0, 0.0, 1, 1.0, -0.1, 1.5])
def test_discount_must_be_in_open_unit_interval(d):
    with pytest.raises(ValueError, match=r"discount must be in \(0, 1\)"):
        NGramLM(2, "kneser_ney", discount=d)


def test_kneser_ney_needs_order_2():
    with pytest.raises(ValueError, match="kneser_ney smoothing needs order >= 2"):
        NGramLM(1, "kneser_ney")


@pytest.mark.parametrize("data", [[], [[]], [[], []], ()])
def test_fit_on_an_empty_corpus(data):
    with pytest.raises(ValueError, match="empty corpus"):
        NGramLM(2).fit(data)


@pytest.mark.parametrize("data", [["the cat sat", "a dog"], "the cat", [["a"], "b c"]])
def test_fit_on_strings_raises_type_error(data):
    # regression: fit used to turn each string into a list of characters before checking
    with pytest.raises(TypeError, match="sentences must be sequences of words"):
        NGramLM(2).fit(data)


def test_methods_before_fit_raise():
    lm = NGramLM(2)
    for call in (
        lambda: lm.prob("a"),
        lambda: lm.distribution(),
        lambda: lm.log_prob(["a"]),
        lambda: lm.generate(),
        lambda: lm.cross_entropy([["a"]]),
    ):
        with pytest.raises(RuntimeError, match="not fitted"):
            call()


def test_bos_is_never_predicted():
    with pytest.raises(ValueError, match="never predicted"):
        fit(2, "add_k").prob("<s>", ["a"])


def test_type_errors():
    lm = fit(2, "add_k")
    with pytest.raises(TypeError, match="word must be a str, got int"):
        lm.prob(3)
    with pytest.raises(TypeError, match="context must be a sequence of words"):
        lm.prob("a", "a b")
    with pytest.raises(TypeError, match="context must be a sequence of words"):
        lm.distribution("a b")
    with pytest.raises(TypeError, match="sentence must be a sequence of words"):
        lm.log_prob("a b")


def test_mle_generate_from_an_unseen_context_says_why_it_cannot():
    lm = NGramLM(2, smoothing="mle").fit([["a", "b"]])
    with pytest.raises(ValueError, match="never seen in training"):
        lm.generate(5, context=["<unk>"])
