"""Power-law fits recover known laws; the bootstrap measures their uncertainty."""

from __future__ import annotations

import numpy as np
import pytest

from llmcourse.scaling import Bootstrap, PowerLaw, bootstrap, fit_power_law


def test_fit_power_law_recovers_an_exact_law():
    x = np.geomspace(1e3, 1e7, 9)
    law = fit_power_law(x, 2.5 * x**-0.076)
    assert law.coefficient == pytest.approx(2.5, rel=1e-10)
    assert law.exponent == pytest.approx(-0.076, abs=1e-12)
    np.testing.assert_allclose(law(x), 2.5 * x**-0.076, rtol=1e-10)


def test_kaplan_form_round_trips():
    n_c, alpha = 8.8e13, 0.076  # Kaplan et al.'s L(N)
    n = np.geomspace(1e5, 1e9, 5)
    law = fit_power_law(n, (n_c / n) ** alpha)
    fitted_n_c, fitted_alpha = law.kaplan()
    assert fitted_alpha == pytest.approx(alpha, rel=1e-9)
    assert fitted_n_c == pytest.approx(n_c, rel=1e-6)
    with pytest.raises(ValueError, match="decreasing law"):
        PowerLaw(1.0, 0.5).kaplan()
    with pytest.raises(ValueError, match="nearly flat"):
        PowerLaw(3.0, -0.0005).kaplan()


@pytest.mark.parametrize("seed", range(5))
def test_fit_power_law_with_noise_is_close_and_weighs_decades_alike(seed):
    rng = np.random.default_rng(seed)
    x = np.geomspace(1, 1e6, 40)
    y = 3.0 * x**0.5 * np.exp(rng.normal(0, 0.02, x.size))
    law = fit_power_law(x, y)
    assert law.exponent == pytest.approx(0.5, abs=0.01)
    assert law.coefficient == pytest.approx(3.0, rel=0.1)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([1, 2, 3], [1, 2], "one length"),
        ([1, 0, 3], [1, 2, 3], "finite numbers > 0"),
        ([1, 2], [1, -2], "finite numbers > 0"),
        ([1, float("nan")], [1, 2], "finite numbers > 0"),
        ([5], [1], "at least 2 points"),
        ([4, 4, 4], [1, 2, 3], "two distinct values"),
        ([[1, 2]], [[1, 2]], "1-D"),
    ],
)
def test_fit_power_law_errors(x, y, message):
    with pytest.raises(ValueError, match=message):
        fit_power_law(x, y)


def test_bootstrap_spreads_like_the_noise():
    rng = np.random.default_rng(1)
    x = np.geomspace(10, 1e5, 30)
    y = x**-0.3 * np.exp(rng.normal(0, 0.05, x.size))
    result = bootstrap(lambda a, b: fit_power_law(a, b).exponent, x, y, resamples=400, seed=2)
    assert isinstance(result, Bootstrap) and result.values.shape == (400,)
    # the standard error of a slope: sigma / sqrt(sum (log x - mean)^2)
    log_x = np.log(x)
    expected_se = 0.05 / np.sqrt(((log_x - log_x.mean()) ** 2).sum())
    assert result.std == pytest.approx(expected_se, rel=0.35)
    low, high = result.interval(0.9)
    assert low < fit_power_law(x, y).exponent < high
    again = bootstrap(lambda a, b: fit_power_law(a, b).exponent, x, y, resamples=400, seed=2)
    np.testing.assert_array_equal(result.values, again.values)


def test_bootstrap_errors():
    with pytest.raises(ValueError, match="resamples must be an integer >= 2"):
        bootstrap(lambda a: 0.0, [1, 2], resamples=1)
    with pytest.raises(ValueError, match="one length"):
        bootstrap(lambda a, b: 0.0, [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="resamplings"):
        bootstrap(lambda a: fit_power_law(a, a).exponent, [3.0, 3.0, 3.0], resamples=5)
    with pytest.raises(ValueError, match="level"):
        Bootstrap(np.arange(5.0)).interval(1.0)
