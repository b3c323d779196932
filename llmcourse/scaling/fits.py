"""Power laws: fitting ``y = a x^b`` in log space, with bootstrap uncertainty.

A power law is a straight line on log-log axes: ``log y = log a + b log x``. Fitting
it is least squares on the logarithms (:func:`fit_power_law`), which weighs every
decade of ``x`` alike and every point by its *relative* error, as a plot on log axes
does (least squares on ``y`` itself would let the largest values decide). Kaplan et
al. (2020) write the laws with a scale instead of a coefficient,
``L(N) = (N_c / N)^alpha_N``: :meth:`PowerLaw.kaplan` converts.

How sure is a fitted exponent? :func:`bootstrap` refits on runs drawn with
replacement from the runs themselves (Efron, 1979) and reports the spread of the
refitted values: the uncertainty that comes from which runs happened to be made.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from llmcourse.checks import check_int


def check_positive_series(**series: Sequence[float]) -> list[np.ndarray]:
    """The series as float64 arrays; raise unless they are 1-D, of one length >= 2, and
    every value is finite and > 0 (logarithms are taken)."""
    arrays = []
    for name, values in series.items():
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1:
            raise ValueError(f"{name} must be a 1-D sequence of numbers, got shape {array.shape}")
        if not (np.isfinite(array).all() and (array > 0).all()):
            raise ValueError(f"{name} must hold finite numbers > 0, got {array.tolist()}")
        arrays.append(array)
    lengths = {name: len(a) for name, a in zip(series, arrays, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"the series must have one length, got {lengths}")
    if arrays and len(arrays[0]) < 2:
        raise ValueError(f"a fit needs at least 2 points, got {len(arrays[0])}")
    return arrays


@dataclass(frozen=True)
class PowerLaw:
    """``y = coefficient * x ** exponent``."""

    coefficient: float
    exponent: float

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.coefficient * np.asarray(x, dtype=np.float64) ** self.exponent

    def kaplan(self) -> tuple[float, float]:
        """``(x_c, alpha)`` with ``y = (x_c / x) ** alpha``: ``alpha = -exponent``,
        ``x_c = coefficient ** (1 / alpha)``. Only for a decreasing law."""
        if not self.exponent < 0:
            raise ValueError(f"Kaplan's form needs a decreasing law, got exponent {self.exponent}")
        alpha = -self.exponent
        try:
            return math.exp(math.log(self.coefficient) / alpha), alpha
        except OverflowError:
            raise ValueError(
                f"x_c overflows: the law is nearly flat (alpha = {alpha:.3g}); use the "
                "coefficient form"
            ) from None


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> PowerLaw:
    """The least-squares line through ``(log x, log y)``, as a :class:`PowerLaw`.

    Args:
        x, y: positive numbers of one length, at least two distinct ``x``.
    """
    log_x, log_y = (np.log(a) for a in check_positive_series(x=x, y=y))
    if np.ptp(log_x) == 0:
        raise ValueError("x must take at least two distinct values")
    exponent, intercept = np.polyfit(log_x, log_y, 1)
    return PowerLaw(math.exp(intercept), float(exponent))


@dataclass(frozen=True)
class Bootstrap:
    """Refitted values of one parameter: their mean, standard deviation and a 90% interval."""

    values: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def std(self) -> float:
        return float(self.values.std(ddof=1))

    def interval(self, level: float = 0.9) -> tuple[float, float]:
        """The central ``level`` interval of the refitted values (percentile bootstrap)."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        tail = 100 * (1 - level) / 2
        low, high = np.percentile(self.values, [tail, 100 - tail])
        return float(low), float(high)


def bootstrap(
    fit: Callable[..., float],
    *series: Sequence[float],
    resamples: int = 1000,
    seed: int = 0,
) -> Bootstrap:
    """Refit ``fit(*series) -> float`` on ``resamples`` resamplings of the points.

    Each resampling draws as many points as there are, with replacement, from the
    points themselves (the same rows of every series). Resamplings whose fit fails (for
    instance, all points at one ``x``) are drawn again.
    """
    check_int("resamples", resamples, minimum=2)
    arrays = [np.asarray(s, dtype=np.float64) for s in series]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays) or n < 2:
        raise ValueError("bootstrap needs series of one length, at least 2 points")
    rng = np.random.default_rng(seed)
    values: list[float] = []
    for _ in range(10 * resamples):
        rows = rng.integers(0, n, n)
        try:
            values.append(float(fit(*(a[rows] for a in arrays))))
        except (ValueError, np.linalg.LinAlgError):
            continue
        if len(values) == resamples:
            return Bootstrap(np.array(values))
    raise ValueError(f"the fit failed on {10 * resamples - len(values)} resamplings; too few")
