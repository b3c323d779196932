"""Tests of llmcourse.explorers.scaling_fit: the fit on the smallest budgets of the shipped
sweep, its predictions for the largest budget, and the widget."""

from __future__ import annotations

import numpy as np
import pytest

from llmcourse.explorers import (
    WIDGET_VIEW,
    BudgetFitChart,
    budget_fit_view,
    budgets_of,
    explore_scaling_fit,
    isoflop_budget,
)
from llmcourse.scaling import fit_parametric, load_sweep


@pytest.fixture(scope="module")
def isoflop():
    runs = load_sweep()["runs"]
    return [r for r in runs if r["group"].startswith("isoflop lexicon")]


@pytest.fixture(scope="module")
def views(isoflop):
    return {k: budget_fit_view(isoflop, k) for k in (2, 3, 4)}


def test_budgets(isoflop):
    assert isoflop_budget({"group": "isoflop lexicon 3e+12"}) == 3e12
    assert budgets_of(isoflop) == [1e11, 3e11, 1e12, 3e12, 1e13]
    with pytest.raises(ValueError, match="not an IsoFLOP run"):
        isoflop_budget({"group": "fixed-D lexicon"})


def test_the_view_is_the_fit_of_the_smallest_budgets(isoflop, views):
    for k, view in views.items():
        known = [r for r in isoflop if isoflop_budget(r) <= [1e11, 3e11, 1e12, 3e12][k - 1]]
        fit = fit_parametric([r["N"] for r in known], [r["D"] for r in known],
                             [r["loss"] for r in known])  # fmt: skip
        assert view.fit == fit
        held = sorted((r for r in isoflop if isoflop_budget(r) == 1e13), key=lambda r: r["N"])
        assert view.held_out == 1e13 and view.k == k
        assert view.n.tolist() == [r["N"] for r in held]
        assert view.measured.tolist() == [r["loss"] for r in held]
        expected = [fit(r["N"], r["D"]) for r in held]
        np.testing.assert_allclose(view.predicted, expected, rtol=1e-12)
        assert view.mean_abs_error == pytest.approx(np.abs(view.measured - view.predicted).mean())
        assert view.predicted_best_n == pytest.approx(float(fit.optimal(1e13)[0]))
        assert view.measured_best_n == min(held, key=lambda r: r["loss"])["N"]


def test_more_budgets_predict_better_on_the_shipped_sweep(views):
    errors = [views[k].mean_abs_error for k in (2, 3, 4)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.1  # what Chapter 10 reports for four budgets
    # the optimum moves towards the measured one, and stays below it
    optima = [views[k].predicted_best_n for k in (2, 3, 4)]
    assert optima == sorted(optima) and optima[-1] < views[4].measured_best_n


def test_views_are_validated(isoflop):
    with pytest.raises(ValueError, match=r"k must be an integer in \[2, 4\]"):
        budget_fit_view(isoflop, 5)
    with pytest.raises(ValueError, match=r"k must be an integer in \[2, 4\]"):
        budget_fit_view(isoflop, 1)
    two = [r for r in isoflop if isoflop_budget(r) <= 3e11]
    with pytest.raises(ValueError, match="at least 3 budgets"):
        budget_fit_view(two, 2)


def test_the_chart_keeps_its_axes_and_draws_the_fit(isoflop, views):
    chart = BudgetFitChart(isoflop, floor=1.3)
    first, last = chart.draw(views[2]), chart.draw(views[4])
    for fig in (first, last):
        ax = fig.axes[0]
        assert ax.get_ylim() == pytest.approx(chart.ylim)
        assert ax.get_xlim() == pytest.approx((chart.grid[0], chart.grid[-1]))
    # the dashed line is the fit's profile of the held-out budget
    ax = last.axes[0]
    (dashed,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    x, y = dashed.get_data()
    np.testing.assert_allclose(y, views[4].fit(x, 1e13 / (6 * x)))
    assert "mean |error| " + f"{views[4].mean_abs_error:.3f}" in ax.get_title()
    # the predicted optimum of k = 2 lies outside the sizes: no star, the title says it
    labels = [line.get_label() for line in first.axes[0].get_lines()]
    assert "predicted optimum" not in labels
    assert "predicted optimum" in [line.get_label() for line in ax.get_lines()]


def test_the_widget_swaps_pictures(isoflop, views):
    explorer = explore_scaling_fit(isoflop, views=views)
    slider = explorer.controls["k"]
    assert (slider.value, slider.min, slider.max) == (4, 2, 4)
    shown = {}
    for k in (2, 3, 4):
        slider.value = k
        shown[k] = explorer.output.outputs[0]["data"]["image/png"]
        assert explorer.rendering.text.startswith(f"fit on {k} budgets")
        assert f"{views[k].mean_abs_error:.3f}" in explorer.rendering.text
    assert len(set(shown.values())) == 3
    assert set(explorer._repr_mimebundle_()) == {"text/plain", WIDGET_VIEW, "image/png"}
