"""Chinchilla's three approaches recover the allocation of a known loss surface."""

from __future__ import annotations

import numpy as np
import pytest

from llmcourse.scaling import (
    ParametricLoss,
    fit_parametric,
    frontier,
    isoflop_minimum,
    optimal_allocation,
)

TRUE = ParametricLoss(E=1.7, A=40.0, B=300.0, alpha=0.35, beta=0.4)
BUDGETS = (1e11, 3e11, 1e12, 3e12, 1e13)


def isoflop_runs(noise: float = 0.0, seed: int = 0):
    """Runs of a known surface on IsoFLOP slices: (budget, N, D, loss)."""
    rng = np.random.default_rng(seed)
    runs = []
    for budget in BUDGETS:
        n_opt, _ = TRUE.optimal(budget)
        for n in n_opt * np.geomspace(1 / 8, 8, 7):
            d = budget / (6 * n)
            runs.append((budget, n, d, TRUE(n, d) * np.exp(rng.normal(0, noise))))
    return np.array(runs)


def test_the_closed_form_optimum_is_the_minimum_on_the_budget():
    for budget in BUDGETS:
        n_opt, d_opt = TRUE.optimal(budget)
        assert 6 * n_opt * d_opt == pytest.approx(budget)
        n = n_opt * np.geomspace(0.5, 2, 101)
        losses = TRUE(n, budget / (6 * n))
        assert losses.argmin() == 50  # the middle: n_opt itself
    a, b = TRUE.exponents
    assert a + b == pytest.approx(1) and a == pytest.approx(0.4 / 0.75)
    n1, _ = TRUE.optimal(1e12)
    n2, _ = TRUE.optimal(1e13)
    assert np.log(n2 / n1) / np.log(10) == pytest.approx(a)


@pytest.mark.parametrize("noise", [0.0, 0.003])
def test_fit_parametric_recovers_the_surface(noise):
    runs = isoflop_runs(noise)
    fit = fit_parametric(runs[:, 1], runs[:, 2], runs[:, 3])
    tolerance = 1e-4 if noise == 0 else 0.03
    assert fit.E == pytest.approx(TRUE.E, rel=tolerance)
    assert fit.alpha == pytest.approx(TRUE.alpha, rel=10 * tolerance)
    assert fit.beta == pytest.approx(TRUE.beta, rel=10 * tolerance)
    assert fit.exponents[0] == pytest.approx(TRUE.exponents[0], abs=0.02 if noise else 1e-4)


def test_isoflop_minimum_finds_the_bottom_of_each_slice():
    runs = isoflop_runs()
    minima = []
    for budget in BUDGETS:
        rows = runs[runs[:, 0] == budget]
        result = isoflop_minimum(budget, rows[:, 1], rows[:, 3])
        n_opt, _ = TRUE.optimal(budget)
        assert result.n_opt == pytest.approx(n_opt, rel=0.1)  # a parabola in log N is close
        assert result.loss == pytest.approx(rows[:, 3].min(), abs=0.01)
        minima.append(result.n_opt)
    n_law, d_law = optimal_allocation(BUDGETS, minima)
    assert n_law.exponent == pytest.approx(TRUE.exponents[0], abs=0.02)
    assert d_law.exponent == pytest.approx(TRUE.exponents[1], abs=0.02)


def test_isoflop_minimum_refuses_a_slope_without_a_valley():
    with pytest.raises(ValueError, match="do not form a valley"):
        isoflop_minimum(1e12, [1e4, 1e5, 1e6, 1e7], [2.0, 2.4, 2.6, 2.65])
    with pytest.raises(ValueError, match="lies outside the runs"):
        isoflop_minimum(1e12, [1e4, 1e5, 1e6, 1e7], [3.0, 2.5, 2.2, 2.1])
    with pytest.raises(ValueError, match="at least 3 runs"):
        isoflop_minimum(1e12, [1e4, 1e5], [3.0, 2.5])


def test_frontier_is_the_lower_envelope_of_the_curves():
    curves, points = [], []
    for n in (1e4, 1e5, 1e6):
        tokens = np.geomspace(1e4, 1e8, 50)
        curves.append((n, 6 * n * tokens, TRUE(n, tokens)))
        points += [(c, loss, n) for c, loss in zip(6 * n * tokens, TRUE(n, tokens), strict=True)]
    result = frontier(curves, levels=20)
    compute = np.array([p[0] for p in points])
    ratio = (compute.max() * (1 + 1e-9) / compute.min()) ** (1 / 20)  # one bin's width
    for level, loss, n in zip(result.compute, result.loss, result.n, strict=True):
        reached = [p for p in points if p[0] < level * np.sqrt(ratio)]
        best = min(reached, key=lambda p: p[1])
        assert loss == best[1] and n == best[2]
    assert (np.diff(result.loss) <= 0).all()  # more compute never hurts the best run
    assert result.n[0] == 1e4 and result.n[-1] == 1e6  # small models first, large last


def test_errors():
    with pytest.raises(ValueError, match="at least 5 runs"):
        fit_parametric([1, 2, 3], [1, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="finite numbers > 0"):
        fit_parametric([1, 2, 3, 4, 0], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="one length"):
        fit_parametric([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="delta must be > 0"):
        fit_parametric([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], delta=0.0)
    with pytest.raises(ValueError, match="grid must give"):
        fit_parametric([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], grid={"a": (0,)})
    with pytest.raises(ValueError, match="at least one run"):
        frontier([])
