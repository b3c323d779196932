"""Grading tests for the Chapter 10 exercises (solutions/ch10_scaling_laws.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``; an answer's
points add up to those announced in the notebook's heading. Inputs are random, drawn
from the ``fresh_seed``; the expected values come from ``llmcourse.scaling`` (the FLOP
count of a real configuration, the power-law fit, the IsoFLOP parabola and the
parametric loss's optimum), each tested on its own, or from hand computations.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from llmcourse.grading.expect import expect_float, expect_type
from llmcourse.modules import TransformerConfig
from llmcourse.scaling import (
    ParametricLoss,
    fit_power_law,
    isoflop_minimum,
    training_flops_per_token,
)

NOTEBOOK = "ch10_scaling_laws"


# --------------------------------------------------------------------- FLOPs per token
@pytest.mark.exercise(
    "flops_per_token",
    points=1,
    hint="6 * 12 * L * d^2 for the blocks, plus 6 * V * d for the output layer, plus "
    "12 * L * T * d for attention.",
)
def test_flops_per_token_of_gpt2_small(student):
    got = student.call("flops_per_token", 12, 768, 1024, 50257)
    expect_type(got, int, what="the FLOPs")
    expected = 6 * 12 * 12 * 768**2 + 6 * 50257 * 768 + 12 * 12 * 1024 * 768
    assert got == expected, f"expected {expected:,} for GPT-2 small, got {got:,}"


@pytest.mark.exercise(
    "flops_per_token",
    points=2,
    hint="The count must equal what FlopCounterMode measures on a real GPT of that shape "
    "(without biases): check each of the three terms.",
)
def test_flops_per_token_equals_the_counted_flops(student, fresh_seed):
    rng = random.Random(fresh_seed)
    layers, d, context, vocab = (
        rng.randint(1, 12),
        2 * rng.randint(4, 256),
        rng.randint(1, 2048),
        rng.randint(2, 60000),
    )
    config = TransformerConfig(vocab, context, d, 2, layers, bias=False)
    expected = training_flops_per_token(config)["total"]
    got = student.call("flops_per_token", layers, d, context, vocab)
    expect_type(got, int, what="the FLOPs")
    assert got == expected, (
        f"L={layers}, d={d}, T={context}, V={vocab}: expected {expected:,}, got {got:,}"
    )


# ------------------------------------------------------------------------ power laws
@pytest.mark.exercise(
    "fit_power_law",
    points=1,
    hint="Take logarithms of x and y first, then fit a line; return (a, b), not (log a, b).",
)
def test_fit_power_law_exact(student):
    x = [1.0, 10.0, 100.0, 1000.0]
    a, b = student.call("fit_power_law", x, [3.0 * v**-0.5 for v in x])
    expect_float(a, 3.0, rel=1e-9, what="a")
    expect_float(b, -0.5, rel=1e-9, what="b")


@pytest.mark.exercise(
    "fit_power_law",
    points=2,
    hint="Least squares on (log x, log y), every point weighing the same: the residuals "
    "are errors of log y, not of y.",
)
def test_fit_power_law_noisy(student, fresh_seed):
    rng = np.random.default_rng(fresh_seed)
    n = int(rng.integers(3, 30))
    x = np.exp(rng.uniform(0, 15, n))
    x[0], x[1] = 1.0, 2.0  # at least two distinct values
    y = math.exp(rng.uniform(-3, 3)) * x ** rng.uniform(-1, 1) * np.exp(rng.normal(0, 0.2, n))
    expected = fit_power_law(x, y)
    a, b = student.call("fit_power_law", x.tolist(), y.tolist())
    expect_float(a, expected.coefficient, rel=1e-6, what=f"a (seed {fresh_seed})")
    expect_float(b, expected.exponent, rel=1e-6, abs=1e-9, what=f"b (seed {fresh_seed})")


# ---------------------------------------------------------------------- IsoFLOP bottom
@pytest.mark.exercise(
    "isoflop_bottom",
    points=2,
    hint="Fit loss against log N with a parabola c2 u^2 + c1 u + c0 and return "
    "exp(-c1 / (2 c2)), an N, not a log.",
)
def test_isoflop_bottom(student, fresh_seed):
    rng = np.random.default_rng(fresh_seed)
    center = math.exp(rng.uniform(8, 16))
    n = center * np.exp(np.sort(rng.uniform(-3, 3, int(rng.integers(3, 9)))))
    n[0], n[-1] = center / 20, center * 20  # the valley's bottom lies between the runs
    loss = rng.uniform(0.01, 0.2) * (np.log(n / center)) ** 2 + rng.uniform(1.5, 4.0)
    loss = loss + rng.normal(0, 0.002, len(n))
    expected = isoflop_minimum(1e12, n, loss).n_opt
    got = student.call("isoflop_bottom", n.tolist(), loss.tolist())
    expect_float(got, expected, rel=1e-6, what=f"N_opt (seed {fresh_seed})")


# ---------------------------------------------------------------- compute-optimal split
@pytest.mark.exercise(
    "compute_optimal",
    points=1,
    hint="With alpha = beta and A = B, the optimum is N = D = sqrt(C / 6).",
)
def test_compute_optimal_symmetric(student):
    n_opt, d_opt = student.call("compute_optimal", 6e12, 100.0, 100.0, 0.4, 0.4)
    expect_float(n_opt, 1e6, rel=1e-9, what="N_opt")
    expect_float(d_opt, 1e6, rel=1e-9, what="D_opt")


@pytest.mark.exercise(
    "compute_optimal",
    points=2,
    hint="N_opt = G (C/6)^(beta/(alpha+beta)) with G = (alpha A / (beta B))^(1/(alpha+beta)), "
    "and D_opt = C / (6 N_opt).",
)
def test_compute_optimal_is_the_minimum(student, fresh_seed):
    rng = np.random.default_rng(fresh_seed)
    law = ParametricLoss(
        E=float(rng.uniform(1, 3)),
        A=float(math.exp(rng.uniform(0, 8))),
        B=float(math.exp(rng.uniform(0, 8))),
        alpha=float(rng.uniform(0.1, 1.0)),
        beta=float(rng.uniform(0.1, 1.0)),
    )
    budget = float(10 ** rng.uniform(8, 24))
    expected_n, expected_d = law.optimal(budget)
    n_opt, d_opt = student.call("compute_optimal", budget, law.A, law.B, law.alpha, law.beta)
    expect_float(n_opt, float(expected_n), rel=1e-6, what=f"N_opt (seed {fresh_seed})")
    expect_float(d_opt, float(expected_d), rel=1e-6, what=f"D_opt (seed {fresh_seed})")
