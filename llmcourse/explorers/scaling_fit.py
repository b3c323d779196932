"""Explorer of Chapter 10: predict the largest budget of a sweep from fewer smaller ones.

:func:`budget_fit_view` fits the parametric loss ``L(N, D) = E + A/N^alpha + B/D^beta``
(:func:`llmcourse.scaling.fit_parametric`) to the IsoFLOP runs of the ``k`` smallest
budgets only, and compares its predictions with the measured runs of the largest budget,
which the fit never saw: the loss of each run and the compute-optimal size.
:func:`explore_scaling_fit` wraps it in a widget with a slider over ``k``; the fits are
made once, when the widget is built, so that moving the slider only redraws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ipywidgets
import numpy as np
from matplotlib.figure import Figure

from llmcourse.checks import check_int_in
from llmcourse.explorers.widget import Explorer, Rendering, figure_rendering
from llmcourse.scaling.chinchilla import ParametricLoss, fit_parametric


def isoflop_budget(run: Mapping) -> float:
    """The compute budget of an IsoFLOP run, the number that ends its group
    (``"isoflop lexicon 1e+12"`` -> ``1e12``)."""
    group = run.get("group", "")
    if not group.startswith("isoflop"):
        raise ValueError(f"not an IsoFLOP run: group {group!r}")
    return float(group.split()[-1])


def budgets_of(runs: Sequence[Mapping]) -> list[float]:
    """The distinct budgets of IsoFLOP ``runs``, ascending."""
    return sorted({isoflop_budget(run) for run in runs})


@dataclass(frozen=True)
class BudgetFitView:
    """A parametric fit to the ``k`` smallest budgets, tested on the largest.

    Attributes:
        budgets: every budget of the runs, ascending.
        k: how many of the smallest budgets the fit saw.
        fit: the fitted :class:`~llmcourse.scaling.ParametricLoss`.
        n, measured, predicted: ``(runs,)`` arrays over the held-out budget's runs,
            ascending in ``N``: their sizes, measured losses and the fit's predictions.
        mean_abs_error: ``mean |measured - predicted|`` in nats per token.
        predicted_best_n: the fit's compute-optimal ``N`` at the held-out budget.
        measured_best_n: the ``N`` of the held-out run with the lowest loss.
    """

    budgets: tuple[float, ...]
    k: int
    fit: ParametricLoss
    n: np.ndarray
    measured: np.ndarray
    predicted: np.ndarray
    mean_abs_error: float
    predicted_best_n: float
    measured_best_n: float

    @property
    def held_out(self) -> float:
        """The budget the fit is tested on: the largest."""
        return self.budgets[-1]


def budget_fit_view(runs: Sequence[Mapping], k: int) -> BudgetFitView:
    """Fit the parametric loss to the runs of the ``k`` smallest budgets and predict the
    runs of the largest one.

    Args:
        runs: IsoFLOP runs, each a mapping with ``group``, ``N``, ``D`` and ``loss``
            (the records of :func:`llmcourse.scaling.load_sweep`), of at least 3 budgets.
        k: in ``[2, budgets - 1]``; one budget alone cannot separate ``N`` from ``D``
            (on it, ``D = C / 6N``), and the largest is held out.
    """
    budgets = budgets_of(runs)
    if len(budgets) < 3:
        raise ValueError(f"the runs must span at least 3 budgets, got {len(budgets)}")
    check_int_in("k", k, 2, len(budgets) - 1)
    known = [run for run in runs if isoflop_budget(run) in budgets[:k]]
    fit = fit_parametric(
        [r["N"] for r in known], [r["D"] for r in known], [r["loss"] for r in known]
    )
    held = sorted((run for run in runs if isoflop_budget(run) == budgets[-1]), key=lambda r: r["N"])
    n = np.array([r["N"] for r in held], dtype=np.float64)
    measured = np.array([r["loss"] for r in held], dtype=np.float64)
    predicted = np.asarray(fit(n, [r["D"] for r in held]), dtype=np.float64)
    n_opt, _ = fit.optimal(budgets[-1])
    return BudgetFitView(
        budgets=tuple(budgets),
        k=k,
        fit=fit,
        n=n,
        measured=measured,
        predicted=predicted,
        mean_abs_error=float(np.abs(measured - predicted).mean()),
        predicted_best_n=float(n_opt),
        measured_best_n=float(n[np.argmin(measured)]),
    )


class BudgetFitChart:
    """IsoFLOP profiles of every budget, measured (points) and as the fit sees them
    (curves): filled points for the budgets the fit saw, black ones for the held-out
    budget, its predicted curve dashed, the predicted optimum a star. The axes are set
    once from all the runs, so that moving ``k`` moves only the curves."""

    def __init__(self, runs: Sequence[Mapping], floor: float | None = None) -> None:
        self.runs = list(runs)
        self.floor = floor
        n = np.array([r["N"] for r in self.runs], dtype=np.float64)
        loss = np.array([r["loss"] for r in self.runs], dtype=np.float64)
        self.grid = np.geomspace(n.min() / 1.5, n.max() * 1.5, 60)
        low = loss.min() if floor is None else min(loss.min(), floor)
        self.ylim = (low - 0.05, loss.max() + 0.15)

    def draw(self, view: BudgetFitView) -> Figure:
        fig = Figure(figsize=(7.5, 4.0))
        fig.subplots_adjust(left=0.1, right=0.98, top=0.86, bottom=0.13)
        ax = fig.add_subplot()
        colors = [f"C{i}" for i in range(len(view.budgets) - 1)] + ["k"]
        for i, (budget, color) in enumerate(zip(view.budgets, colors, strict=True)):
            runs = [r for r in self.runs if isoflop_budget(r) == budget]
            seen, held = i < view.k, budget == view.held_out
            ax.semilogx(
                [r["N"] for r in runs],
                [r["loss"] for r in runs],
                "o",
                color=color,
                mfc=color if seen or held else "none",
                label=f"C = {budget:.0e}"
                + (" (fitted)" if seen else " (held out)" if held else ""),
            )
            curve = view.fit(self.grid, budget / (6 * self.grid))
            ax.semilogx(
                self.grid, curve, "--" if held else "-", color=color, lw=1.5 if held else 0.8
            )
        n_star = view.predicted_best_n
        if self.grid[0] <= n_star <= self.grid[-1]:  # else only the title gives it
            star = float(view.fit(n_star, view.held_out / (6 * n_star)))
            ax.plot([n_star], [star], "k*", ms=12, label="predicted optimum")
        ax.set_xlim(self.grid[0], self.grid[-1])
        if self.floor is not None:
            ax.axhline(self.floor, color="0.6", ls=":", lw=1)
        ax.set_ylim(*self.ylim)
        ax.set(xlabel="non-embedding parameters N", ylabel="held-out loss (nats/token)")
        ax.legend(fontsize=7, ncol=2, loc="upper right")
        ax.set_title(
            f"fit on the {view.k} smallest budgets: on C = {view.held_out:.0e}, mean |error| "
            f"{view.mean_abs_error:.3f} nats\npredicted best N = {view.predicted_best_n:,.0f}, "
            f"measured best N = {view.measured_best_n:,.0f}",
            fontsize=9,
        )
        return fig


def explore_scaling_fit(
    runs: Sequence[Mapping],
    k: int | None = None,
    floor: float | None = None,
    views: Mapping[int, BudgetFitView] | None = None,
) -> Explorer:
    """A widget: a slider over ``k``, the number of the smallest budgets the parametric
    fit sees, redrawing the fit's IsoFLOP curves and its prediction of the largest budget.

    Args:
        runs: the IsoFLOP runs (see :func:`budget_fit_view`).
        k: the initial ``k`` (default: every budget but the largest).
        floor: a loss to draw as a dotted line (the language's entropy), or None.
        views: the :func:`budget_fit_view` of ``runs`` for some ``k``, already computed
            (they are not fitted again); the others are computed here.

    The fits and their figures are all made here, once (a few tenths of a second): the
    slider only swaps pictures.
    """
    budgets = budgets_of(runs)
    k = len(budgets) - 1 if k is None else k
    check_int_in("k", k, 2, len(budgets) - 1)
    chart = BudgetFitChart(runs, floor)
    renderings = {}
    for j in range(2, len(budgets)):
        view = views[j] if views is not None and j in views else budget_fit_view(runs, j)
        text = f"fit on {j} budgets: mean error {view.mean_abs_error:.3f} nats on the largest"
        renderings[j] = figure_rendering(chart.draw(view), text)

    def render(k: int) -> Rendering:
        return renderings[k]

    slider = ipywidgets.IntSlider(
        value=k,
        min=2,
        max=len(budgets) - 1,
        description="budgets fitted k",
        style={"description_width": "initial"},
    )
    return Explorer({"k": slider}, render, "explorer: a scaling-law fit on the k smallest budgets")
