"""Compute-optimal allocation: Chinchilla's three approaches (Hoffmann et al., 2022).

A budget of ``C ~ 6 N D`` FLOPs can buy a large model trained briefly or a small one
trained long. Which ``N`` (and ``D = C / 6N``) gives the lowest loss? The answer is a
pair of power laws, ``N_opt(C) ~ C^a`` and ``D_opt(C) ~ C^b`` with ``a + b = 1``, and
Hoffmann et al. estimate the exponents three ways:

1. **Envelope of the training curves** (:func:`frontier`): every point of every run's
   loss curve is a (compute spent, loss) pair. For each level of compute, the best loss
   reached by any run, and the size of that run, trace the compute frontier ``L(C)``
   and ``N_opt(C)``.
2. **IsoFLOP profiles** (:func:`isoflop_minimum`): at a fixed budget, the final loss
   against ``log N`` is a valley; a parabola fitted to it puts the bottom at ``N_opt``.
3. **A parametric loss** (:func:`fit_parametric`):
   ``L(N, D) = E + A / N^alpha + B / D^beta``, fitted to every run by minimising the
   Huber loss of ``log L`` (robust to a few bad runs) with L-BFGS, from a grid of
   starting points (the problem has many local minima). Minimising it under
   ``C = 6 N D`` gives the allocation in closed form (:meth:`ParametricLoss.optimal`):
   ``N_opt = G (C/6)^(beta/(alpha+beta))``, ``G = (alpha A / (beta B))^(1/(alpha+beta))``.
   ``E`` is the loss no amount of ``N`` and ``D`` removes: the entropy of the text,
   if the model family can represent its distribution.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from llmcourse.checks import check_int
from llmcourse.scaling.fits import PowerLaw, check_positive_series, fit_power_law

HOFFMANN_GRID = {
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
}
"""The starting points of Hoffmann et al.'s fit (``a = log A``, ``b = log B``, ``e = log E``)."""


@dataclass(frozen=True)
class IsoFLOPMinimum:
    """The bottom of one budget's parabola ``L = c2 (log N)^2 + c1 log N + c0``."""

    budget: float
    n_opt: float
    loss: float
    coefficients: tuple[float, float, float]


def isoflop_minimum(budget: float, n: Sequence[float], loss: Sequence[float]) -> IsoFLOPMinimum:
    """Fit a parabola to ``loss`` against ``log n`` (runs of one budget) and return its
    bottom. Raises a ValueError unless the parabola opens upwards (a valley) and its
    bottom lies between the smallest and the largest run."""
    n, loss = check_positive_series(n=n, loss=loss)
    if len(n) < 3:
        raise ValueError(f"a parabola needs at least 3 runs, got {len(n)}")
    c2, c1, c0 = np.polyfit(np.log(n), loss, 2)
    if not c2 > 0:
        raise ValueError(
            f"the losses at budget {budget:.3g} do not form a valley in log N (curvature "
            f"{c2:.3g}); add runs on both sides of the minimum"
        )
    if not np.log(n).min() <= -c1 / (2 * c2) <= np.log(n).max():
        raise ValueError(
            f"the bottom of the parabola at budget {budget:.3g} lies outside the runs' sizes "
            f"({n.min():.3g} to {n.max():.3g}); add runs beyond it"
        )
    bottom = float(c0 - c1**2 / (4 * c2))
    return IsoFLOPMinimum(float(budget), math.exp(-c1 / (2 * c2)), bottom, (c2, c1, c0))


@dataclass(frozen=True)
class Frontier:
    """The compute frontier: at each compute level, the best loss of any run so far and
    the non-embedding parameters of the run that reached it."""

    compute: np.ndarray
    loss: np.ndarray
    n: np.ndarray


def frontier(
    runs: Sequence[tuple[float, Sequence[float], Sequence[float]]], levels: int = 30
) -> Frontier:
    """The lower envelope of training curves (Approach 1).

    Args:
        runs: ``(N, compute, loss)`` per run: its size and the compute spent and loss
            reached at points along its curve (``compute = 6 N tokens so far``).
        levels: log-spaced compute levels between the smallest and the largest compute.

    Returns:
        For each level (the geometric middle of its bin), the lowest loss of all curve
        points with compute below the bin's upper edge, and the ``N`` of the run that
        reached it. Bins without a curve point are left out.
    """
    if not runs:
        raise ValueError("frontier needs at least one run")
    points = []
    for n, compute, loss in runs:
        compute, loss = check_positive_series(compute=compute, loss=loss)
        points += [(c, value, float(n)) for c, value in zip(compute, loss, strict=True)]
    compute, loss, size = (np.array(column) for column in zip(*points, strict=True))
    edges = np.geomspace(compute.min(), compute.max() * (1 + 1e-9), levels + 1)
    kept, best_loss, best_n = [], math.inf, math.nan
    for low, high in itertools.pairwise(edges):
        inside = (compute >= low) & (compute < high)
        if not inside.any():
            continue
        row = np.flatnonzero(inside)[loss[inside].argmin()]
        if loss[row] < best_loss:  # else an earlier, cheaper point stays the best
            best_loss, best_n = float(loss[row]), float(size[row])
        kept.append((math.sqrt(low * high), best_loss, best_n))
    levels_, losses, sizes = (np.array(column) for column in zip(*kept, strict=True))
    return Frontier(levels_, losses, sizes)


@dataclass(frozen=True)
class ParametricLoss:
    """``L(N, D) = E + A / N^alpha + B / D^beta``."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __call__(self, n: float | np.ndarray, d: float | np.ndarray) -> float | np.ndarray:
        n, d = np.asarray(n, dtype=np.float64), np.asarray(d, dtype=np.float64)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def optimal(self, budget: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N_opt, D_opt)`` minimising the loss under ``6 N D = budget``."""
        c = np.asarray(budget, dtype=np.float64) / 6
        s = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / s)
        n_opt = g * c ** (self.beta / s)
        return n_opt, c / n_opt

    @property
    def exponents(self) -> tuple[float, float]:
        """``(a, b)`` of ``N_opt ~ C^a`` and ``D_opt ~ C^b``."""
        s = self.alpha + self.beta
        return self.beta / s, self.alpha / s


def _objective(theta: np.ndarray, log_n, log_d, log_loss, delta: float):
    """Huber loss of ``log L_hat - log L`` and its gradient, ``theta = (a, b, e, alpha,
    beta)``, ``log L_hat = logsumexp(a - alpha log N, b - beta log D, e)``."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    residual = top + np.log(total) - log_loss
    small = np.abs(residual) <= delta
    loss = np.where(small, 0.5 * residual**2, delta * (np.abs(residual) - 0.5 * delta)).sum()
    dresidual = np.where(small, residual, delta * np.sign(residual))
    share = weights / total  # d log L_hat / d (each term)
    grad = np.array(
        [
            (dresidual * share[0]).sum(),
            (dresidual * share[1]).sum(),
            (dresidual * share[2]).sum(),
            -(dresidual * share[0] * log_n).sum(),
            -(dresidual * share[1] * log_d).sum(),
        ]
    )
    return loss, grad


def fit_parametric(
    n: Sequence[float],
    d: Sequence[float],
    loss: Sequence[float],
    delta: float = 1e-3,
    grid: dict[str, Sequence[float]] | None = None,
    refine: int = 25,
) -> ParametricLoss:
    """Fit ``L(N, D) = E + A / N^alpha + B / D^beta`` as Hoffmann et al. (2022) do.

    Minimises ``sum Huber_delta(log L_hat(N_i, D_i) - log L_i)`` over ``log A``, ``log B``,
    ``log E``, ``alpha``, ``beta`` with L-BFGS-B from the points of ``grid`` (default
    :data:`HOFFMANN_GRID`, 4,500 starts) and keeps the best result. To keep this quick,
    the objective is first evaluated at every grid point at once, and L-BFGS runs from
    the ``refine`` best of them (the others start far from any good minimum).

    Args:
        n, d, loss: one value per run, all > 0, at least 5 runs.
        delta: the Huber threshold (1e-3 in the paper).
        grid: starting values of ``a, b, e, alpha, beta``.
        refine: how many of the best grid points L-BFGS starts from, >= 1.
    """
    n, d, loss = check_positive_series(n=n, d=d, loss=loss)
    if len(n) < 5:
        raise ValueError(f"five parameters need at least 5 runs, got {len(n)}")
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta!r}")
    check_int("refine", refine)
    grid = HOFFMANN_GRID if grid is None else grid
    if set(grid) != set(HOFFMANN_GRID):
        raise ValueError(f"grid must give starting values for {sorted(HOFFMANN_GRID)}")
    data = (np.log(n), np.log(d), np.log(loss), delta)
    starts = np.array(
        list(itertools.product(grid["a"], grid["b"], grid["e"], grid["alpha"], grid["beta"])),
        dtype=np.float64,
    )
    scores = _objective_at_points(starts, *data)
    best = None
    # The problem is tiny: BLAS threads would only wait for each other (by a factor of a
    # hundred on a busy machine), so L-BFGS runs on one.
    with threadpool_limits(limits=1):
        for start in starts[np.argsort(scores)[:refine]]:
            result = minimize(_objective, start, args=data, jac=True, method="L-BFGS-B")
            if best is None or result.fun < best.fun:
                best = result
    a, b, e, alpha, beta = best.x
    return ParametricLoss(math.exp(e), math.exp(a), math.exp(b), float(alpha), float(beta))


def _objective_at_points(points: np.ndarray, log_n, log_d, log_loss, delta: float) -> np.ndarray:
    """The Huber objective of :func:`_objective` at many ``theta`` at once: ``(k, 5)`` ->
    ``(k,)``."""
    a, b, e, alpha, beta = (points[:, i : i + 1] for i in range(5))  # each (k, 1)
    terms = np.stack(
        [a - alpha * log_n, b - beta * log_d, np.broadcast_to(e, a.shape[:1] + log_n.shape)]
    )
    log_hat = np.logaddexp.reduce(terms, axis=0)  # (k, runs)
    residual = np.abs(log_hat - log_loss)
    huber = np.where(residual <= delta, 0.5 * residual**2, delta * (residual - 0.5 * delta))
    return huber.sum(axis=1)


def optimal_allocation(
    budgets: Sequence[float], n_opt: Sequence[float]
) -> tuple[PowerLaw, PowerLaw]:
    """The power laws ``N_opt(C)`` and ``D_opt(C) = C / (6 N_opt(C))`` through the optimal
    sizes found at several budgets (from Approach 1 or 2)."""
    budgets, n_opt = check_positive_series(budgets=budgets, n_opt=n_opt)
    return fit_power_law(budgets, n_opt), fit_power_law(budgets, budgets / (6 * n_opt))
