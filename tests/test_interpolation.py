"""Unit tests for llmcourse.classic.interpolation: Jelinek-Mercer weights fit by EM.

The component probabilities are checked against separately fitted maximum-likelihood
models of each order and against counts worked out by hand; the EM weights against a
brute-force search over a fine grid of the simplex, and against the optimality
conditions of a mixture's likelihood.
"""

from __future__ import annotations

import math

import pytest
import torch

from llmcourse.classic import (
    NGramLM,
    fit_interpolation_weights,
    interpolated_cross_entropy,
    interpolated_prob,
    order_probabilities,
)
from llmcourse.data import english_grammar

# Padded for order 2:  <s> a b </s>  |  <s> a c </s>  |  <s> b b </s>
# V = {<unk>, </s>, b, a, c}, |V| = 5; unigram counts: a 2, b 3, c 1, </s> 3 (9)
# bigram counts:  <s> -> a 2, b 1 (3)   a -> b 1, c 1 (2)   b -> </s> 2, b 1 (3)   c -> </s> 1
TOY = [["a", "b"], ["a", "c"], ["b", "b"]]


@pytest.fixture(scope="module")
def grammar_data():
    grammar = english_grammar()
    train = [s.tokens for s in grammar.generate(300, seed=1)]
    dev = [s.tokens for s in grammar.generate(100, seed=2)]
    return train, dev


def test_components_by_hand():
    lm = NGramLM(2, smoothing="mle").fit(TOY)
    rows = order_probabilities(lm, [["a", "c"], ["c", "zebra"]])
    # predicted: a | <s>,  c | a,  </s> | c,   c | <s>,  <unk> | c,  </s> | <unk>
    expected = [
        [1 / 5, 2 / 9, 2 / 3],
        [1 / 5, 1 / 9, 1 / 2],
        [1 / 5, 3 / 9, 1.0],
        [1 / 5, 1 / 9, 0.0],  # c never follows <s>
        [1 / 5, 0.0, 0.0],  # <unk> was never trained (min_count=1)
        [1 / 5, 3 / 9, 0.0],  # the context <unk> was never seen
    ]
    torch.testing.assert_close(rows, torch.tensor(expected, dtype=torch.float64))


def test_columns_are_the_mle_models_of_each_order(grammar_data):
    train, dev = grammar_data
    lm = NGramLM(3, smoothing="kneser_ney").fit(train)  # the smoothing does not matter
    rows = order_probabilities(lm, dev[:20])
    for m in (1, 2, 3):
        mle = NGramLM(m, smoothing="mle").fit(train)
        column = [
            mle.prob(word, sentence[:t])
            for sentence in dev[:20]
            for t, word in enumerate([*sentence, "</s>"])
        ]
        torch.testing.assert_close(rows[:, m], torch.tensor(column, dtype=torch.float64))
    assert torch.all(rows[:, 0] == 1 / len(lm.vocab))


def test_cross_entropy_of_one_component_is_that_model(grammar_data):
    train, dev = grammar_data
    lm = NGramLM(2, smoothing="mle").fit(train)
    rows = order_probabilities(lm, train[:50])  # training text: every bigram was seen
    assert math.isclose(
        interpolated_cross_entropy(rows, [0.0, 0.0, 1.0]),
        NGramLM(2, smoothing="mle").fit(train).cross_entropy(train[:50]),
        rel_tol=1e-12,
    )
    assert math.isclose(interpolated_cross_entropy(rows, [1.0, 0.0, 0.0]), math.log(len(lm.vocab)))


def test_interpolated_prob_matches_rows_and_sums_to_one(grammar_data):
    train, dev = grammar_data
    lm = NGramLM(3, smoothing="mle").fit(train)
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    sentence = dev[0]
    rows = order_probabilities(lm, [sentence])
    for t, word in enumerate([*sentence, "</s>"]):
        assert math.isclose(
            interpolated_prob(lm, weights, word, sentence[:t]), (rows[t] @ weights).item()
        )
    context = sentence[:2]
    total = sum(interpolated_prob(lm, weights, w, context) for w in lm.vocab.itos)
    assert math.isclose(total, 1.0, rel_tol=1e-12)
    # an unknown word is <unk>, which was never trained: only the uniform part is left
    assert math.isclose(interpolated_prob(lm, weights, "zebra", context), 0.1 / len(lm.vocab))


def test_em_lowers_the_cross_entropy_at_every_step(grammar_data):
    train, dev = grammar_data
    rows = order_probabilities(NGramLM(3, smoothing="mle").fit(train), dev)
    weights, history = fit_interpolation_weights(rows, max_iterations=50, tol=1e-15)
    assert len(history) == 51
    assert all(b <= a + 1e-12 for a, b in zip(history, history[1:], strict=False))
    assert history[-1] < history[0] - 0.05
    assert math.isclose(weights.sum().item(), 1.0) and (weights >= 0).all()
    assert math.isclose(history[-1], interpolated_cross_entropy(rows, weights))


def test_em_finds_the_grid_optimum(grammar_data):
    train, dev = grammar_data
    rows = order_probabilities(NGramLM(2, smoothing="mle").fit(train), dev)
    weights, history = fit_interpolation_weights(rows, max_iterations=2_000, tol=1e-12)
    # brute force over the simplex in steps of 0.005 (the uniform weight must be > 0)
    steps = 200
    grid = torch.tensor(
        [
            (i / steps, j / steps, 1 - (i + j) / steps)
            for i in range(1, steps)
            for j in range(steps - i)
        ],
        dtype=torch.float64,
    )
    losses = -(rows @ grid.T).log().mean(dim=0)
    best = grid[losses.argmin()]
    assert history[-1] <= losses.min().item() + 1e-9
    torch.testing.assert_close(weights, best, atol=0.01, rtol=0)


def test_em_satisfies_the_optimality_conditions(grammar_data):
    # For a mixture, d/d l_m of the mean log-likelihood is mean_t P_m(t) / P(t); at the
    # optimum on the simplex it equals 1 where l_m > 0, and is at most 1 where l_m = 0.
    train, dev = grammar_data
    rows = order_probabilities(NGramLM(3, smoothing="mle").fit(train), dev)
    weights, _ = fit_interpolation_weights(rows, max_iterations=5_000, tol=1e-14)
    gradient = (rows / (rows @ weights).unsqueeze(1)).mean(dim=0)
    active = weights > 1e-4
    torch.testing.assert_close(
        gradient[active], torch.ones(int(active.sum()), dtype=torch.float64), atol=1e-3, rtol=0
    )
    assert (gradient[~active] <= 1 + 1e-3).all()


def test_em_ignores_a_useless_component():
    # Component 2 is always worse than component 1, so its weight goes to zero.
    rows = torch.tensor([[0.1, 0.5, 0.2], [0.1, 0.3, 0.1], [0.1, 0.6, 0.3]], dtype=torch.float64)
    weights, _ = fit_interpolation_weights(rows, max_iterations=2_000, tol=1e-15)
    assert weights[2] < 1e-3 and weights[1] > 0.99


@pytest.mark.parametrize(
    "bad",
    [
        torch.zeros(0, 3),
        torch.ones(3),
        torch.tensor([[0.0, 0.5]]),  # the uniform column must be positive
        torch.tensor([[0.1, -0.5]]),
    ],
)
def test_fit_rejects_bad_components(bad):
    with pytest.raises(ValueError):
        fit_interpolation_weights(bad.double())


def test_rejects_bad_arguments():
    lm = NGramLM(2, smoothing="mle").fit(TOY)
    rows = order_probabilities(lm, TOY)
    with pytest.raises(ValueError, match="shape"):
        interpolated_cross_entropy(rows, [0.5, 0.5])
    with pytest.raises(ValueError, match="sum to 1"):
        interpolated_cross_entropy(rows, [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="sum to 1"):
        interpolated_prob(lm, [1.5, -0.5, 0.0], "a")
    with pytest.raises(ValueError, match="padding"):
        interpolated_prob(lm, [0.2, 0.3, 0.5], "<s>")
    with pytest.raises(TypeError):
        order_probabilities(lm, ["a b"])
    with pytest.raises(ValueError, match="empty"):
        order_probabilities(lm, [])
    with pytest.raises(RuntimeError, match="not fitted"):
        order_probabilities(NGramLM(2), TOY)
    with pytest.raises(ValueError):
        fit_interpolation_weights(rows, max_iterations=0)
    with pytest.raises(ValueError):
        fit_interpolation_weights(rows, tol=0.0)
