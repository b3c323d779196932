"""Tests for llmcourse.data.grammar: an LL(1) PCFG with exact probabilities and entropy."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from llmcourse.data import Grammar, Sample, english_grammar


@pytest.fixture(scope="module")
def english() -> Grammar:
    return english_grammar()


def geometric(p: float) -> Grammar:
    """S -> a S (p) | b (1 - p): a^k b with probability p^k (1 - p)."""
    return Grammar({"S": [(p, ("a", "S")), (1 - p, ("b",))]})


def binary_entropy(p: float) -> float:
    return -p * math.log(p) - (1 - p) * math.log(1 - p)


# ------------------------------------------------------------------- sampling


def test_generate_is_deterministic_per_seed(english):
    a = english.generate(200, seed=7)
    b = english_grammar().generate(200, seed=7)  # a fresh grammar object, same seed
    assert a == b
    assert all(isinstance(s, Sample) for s in a)


def test_generate_differs_across_seeds(english):
    a = [s.tokens for s in english.generate(50, seed=0)]
    b = [s.tokens for s in english.generate(50, seed=1)]
    assert a != b
    # and not just a shifted copy: many different sentences
    assert len({tuple(t) for t in a} | {tuple(t) for t in b}) > 60


def test_sample_uses_the_given_rng(english):
    rng1, rng2 = random.Random(3), random.Random(3)
    assert [english.sample(rng1) for _ in range(20)] == [english.sample(rng2) for _ in range(20)]


def test_generated_sentences_are_well_formed(english):
    for s in english.generate(500, seed=2):
        assert s.tokens[0] in {"the", "every", "many"}
        assert s.tokens[-1] == "."
        assert s.tokens.count(".") == 1
        assert set(s.tokens) <= set(english.words)
        assert s.log_prob < 0


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None])
def test_generate_rejects_bad_n(english, bad):
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        english.generate(bad)


def test_generate_zero(english):
    assert english.generate(0) == []


def test_english_grammar_vocabulary(english):
    assert "writer" in english.words and "writers" in english.words
    assert "S" not in english.words and "N_SG" in english.nonterminals
    assert 55 <= len(english.words) <= 70  # "about 60 words"


# -------------------------------------------------------------------- scoring


def test_log_prob_equals_the_derivation_probability(english):
    # LL(1): each sentence has one derivation, so parsing recovers the sampled log-probability
    samples = english.generate(3000, seed=11)
    for s in samples:
        assert math.isclose(english.log_prob(s.tokens), s.log_prob, rel_tol=1e-12, abs_tol=1e-12)


def test_log_prob_hand_computed(english):
    # the writer of the books is big .
    # S -> the ADJS SUBJ . (0.6); ADJS -> () (0.75); SUBJ -> N_SG MODS_SG VP_SG (0.5);
    # N_SG -> writer (1/10); MODS_SG -> PP MODS_SG (0.25); PP -> PREP NP (1);
    # PREP -> of (1/4); NP -> the ADJS NOUN (0.7); ADJS -> () (0.75); NOUN -> N_PL (0.5);
    # N_PL -> books (1/10); MODS_SG -> () (0.65); VP_SG -> is ADJ (0.25); ADJ -> big (1/7)
    p = 0.6 * 0.75 * 0.5 * 0.1 * 0.25 * 1 * 0.25 * 0.7 * 0.75 * 0.5 * 0.1 * 0.65 * 0.25 / 7
    tokens = "the writer of the books is big .".split()
    assert english.log_prob(tokens) == pytest.approx(math.log(p), rel=1e-12)


@pytest.mark.parametrize(
    "sentence",
    [
        "the writer of the books are big .",  # agreement across the PP
        "the writers that sleeps are big .",  # agreement inside the relative clause
        "every writers sleeps .",  # every + plural
        "many writer sleep .",  # many + singular
        "the writer sleeps",  # no end mark
        "the writer sleeps . .",  # trailing words
        "the big writer sleeps quietly today .",  # at most one adverb
        "writer the sleeps .",
        "the dragon sleeps .",  # unknown word
        "",
    ],
)
def test_log_prob_of_ungrammatical_sentences_is_minus_inf(english, sentence):
    assert english.log_prob(sentence.split()) == -math.inf


def test_log_prob_of_grammatical_variants_is_finite(english):
    for sentence in [
        "the writers of the book are big .",
        "the writers that sleep are big .",
        "every big red writer that reads a book near some tables sleeps today .",
        "many children laugh .",
    ]:
        assert math.isfinite(english.log_prob(sentence.split()))


def test_log_prob_accepts_tuples(english):
    assert english.log_prob(tuple("many children laugh .".split())) == english.log_prob(
        "many children laugh .".split()
    )


def test_log_prob_rejects_a_string(english):
    with pytest.raises(TypeError, match="not a str"):
        english.log_prob("the writer sleeps .")


def test_probabilities_of_all_sentences_of_a_finite_grammar_sum_to_one():
    # S -> a X d (0.4) | b X (0.6);  X -> c Y (0.3) | () (0.7);  Y -> b (0.5) | a (0.5)
    # Sentences: a d (.28), a c b d (.06), a c a d (.06), b (.42), b c b (.09), b c a (.09).
    g = Grammar(
        {
            "S": [(0.4, ("a", "X", "d")), (0.6, ("b", "X"))],
            "X": [(0.3, ("c", "Y")), (0.7, ())],
            "Y": [(0.5, ("b",)), (0.5, ("a",))],
        }
    )
    expected = {
        ("a", "d"): 0.28,
        ("a", "c", "b", "d"): 0.06,
        ("a", "c", "a", "d"): 0.06,
        ("b",): 0.42,
        ("b", "c", "b"): 0.09,
        ("b", "c", "a"): 0.09,
    }
    total, found = 0.0, {}
    # every string over the alphabet up to length 5 (longest sentence has 4 words)
    for length in range(6):
        for tokens in itertools.product("abcd", repeat=length):
            lp = g.log_prob(tokens)
            if lp > -math.inf:
                found[tokens] = math.exp(lp)
            total += math.exp(lp)
    assert found.keys() == expected.keys()
    for tokens, p in expected.items():
        assert found[tokens] == pytest.approx(p, rel=1e-12)
    assert total == pytest.approx(1.0, abs=1e-12)
    # the exact moments of the same grammar, by hand from the table above
    mean_len = sum(len(t) * p for t, p in expected.items())
    entropy = -sum(p * math.log(p) for p in expected.values())
    assert g.mean_length() == pytest.approx(mean_len, rel=1e-12)
    assert g.entropy() == pytest.approx(entropy, rel=1e-12)


# ----------------------------------------------------------- exact moments


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_geometric_grammar_moments(p):
    g = geometric(p)
    # a^k b has k + 1 words and k ~ Geometric: E[k] = p / (1 - p)
    assert g.mean_length() == pytest.approx(1 / (1 - p), rel=1e-12)
    # each rewrite of S is a fresh coin flip with entropy H(p), and there are 1 / (1 - p)
    # rewrites on average
    assert g.entropy() == pytest.approx(binary_entropy(p) / (1 - p), rel=1e-12)
    assert g.entropy_per_token() == pytest.approx(
        binary_entropy(p) / (1 - p) / (1 / (1 - p) + 1), rel=1e-12
    )
    # the entropy is also -sum P log P over the sentences a^k b
    direct = -sum(p**k * (1 - p) * (k * math.log(p) + math.log(1 - p)) for k in range(2000))
    assert g.entropy() == pytest.approx(direct, rel=1e-9)


def test_geometric_grammar_log_prob():
    p = 0.3
    g = geometric(p)
    for k in range(6):
        tokens = ["a"] * k + ["b"]
        assert g.log_prob(tokens) == pytest.approx(k * math.log(p) + math.log(1 - p), rel=1e-12)
    assert g.log_prob(["a", "a"]) == -math.inf
    assert g.log_prob(["b", "a"]) == -math.inf


def test_branching_grammar_moments():
    # S -> a S S (q) | b (1 - q): L = q (1 + 2 L) + (1 - q)  =>  L = 1 / (1 - 2 q);
    # H = H(q) + 2 q H  =>  H = H(q) / (1 - 2 q)
    q = 0.3
    g = Grammar({"S": [(q, ("a", "S", "S")), (1 - q, ("b",))]})
    assert g.mean_length() == pytest.approx(1 / (1 - 2 * q), rel=1e-12)
    assert g.entropy() == pytest.approx(binary_entropy(q) / (1 - 2 * q), rel=1e-12)
    # "a b b" uses S -> a S S once and S -> b twice
    assert g.log_prob(["a", "b", "b"]) == pytest.approx(math.log(q) + 2 * math.log(1 - q))


def test_monte_carlo_entropy_and_length_match_the_exact_values(english):
    samples = english.generate(50_000, seed=123)
    nll = np.array([-s.log_prob for s in samples])
    lengths = np.array([len(s.tokens) for s in samples], dtype=float)
    n = len(samples)
    se_nll = nll.std(ddof=1) / math.sqrt(n)
    se_len = lengths.std(ddof=1) / math.sqrt(n)
    assert abs(nll.mean() - english.entropy()) < 4 * se_nll
    assert abs(lengths.mean() - english.mean_length()) < 4 * se_len
    # the standard errors are small, so the check is sharp
    assert se_nll < 0.05 and se_len < 0.05
    per_token = nll.sum() / (lengths.sum() + n)
    assert per_token == pytest.approx(english.entropy_per_token(), rel=0.01)


def test_entropy_per_token_definition(english):
    assert english.entropy_per_token() == pytest.approx(
        english.entropy() / (english.mean_length() + 1), rel=1e-12
    )


# ----------------------------------------------------------- constructor errors


def test_probabilities_must_sum_to_one():
    with pytest.raises(ValueError, match="probabilities of 'S' must sum to 1"):
        Grammar({"S": [(0.5, ("a",)), (0.4, ("b",))]})


@pytest.mark.parametrize("p", [0.0, -0.5])
def test_probabilities_must_be_positive(p):
    with pytest.raises(ValueError, match="rule probabilities must be > 0"):
        Grammar({"S": [(1 - p, ("a",)), (p, ("b",))]})


def test_unknown_start_symbol():
    with pytest.raises(ValueError, match="start symbol 'T' has no rules"):
        Grammar({"S": [(1.0, ("a",))]}, start="T")


def test_nonterminal_without_alternatives():
    with pytest.raises(ValueError, match="'X' has no alternatives"):
        Grammar({"S": [(1.0, ("a", "X"))], "X": []})


def test_not_ll1_same_first_word():
    with pytest.raises(ValueError, match=r"not LL\(1\).*'S'.*\['a'\]"):
        Grammar({"S": [(0.5, ("a", "b")), (0.5, ("a", "c"))]})


def test_not_ll1_first_follow_conflict():
    # X may be empty, and what follows X ("x") is also what X can start with
    with pytest.raises(ValueError, match=r"not LL\(1\).*'X'.*\['x'\]"):
        Grammar({"S": [(1.0, ("X", "x"))], "X": [(0.5, ("x",)), (0.5, ())]})


def test_left_recursion_is_not_ll1():
    with pytest.raises(ValueError, match=r"LL\(1\)"):
        Grammar({"S": [(0.7, ("S", "S")), (0.3, ("a",))]})


@pytest.mark.parametrize("q", [0.5, 0.6, 0.9])
def test_inconsistent_grammar(q):
    # S -> a S S (q) | b: each S makes 2 q new S on average; q >= 1/2 never ends on average
    with pytest.raises(ValueError, match="not consistent"):
        Grammar({"S": [(q, ("a", "S", "S")), (1 - q, ("b",))]})
