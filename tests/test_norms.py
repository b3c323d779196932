"""Unit tests of llmcourse.modules.norms: what LayerNorm and RMSNorm normalise, and their errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.modules import LayerNorm, RMSNorm


def test_layer_norm_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0, 6.0]])  # mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5
    expected = (x - 3.0) / torch.sqrt(torch.tensor(3.5 + 1e-5))
    torch.testing.assert_close(LayerNorm(4)(x), expected)


def test_rms_norm_by_hand():
    x = torch.tensor([[1.0, -1.0, 1.0, -1.0], [3.0, 4.0, 0.0, 0.0]])  # rms 1 and 2.5
    expected = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.2, 1.6, 0.0, 0.0]])
    torch.testing.assert_close(RMSNorm(4, eps=1e-12)(x), expected)


@settings(max_examples=30, deadline=None)
@given(
    d=st.integers(2, 32),
    scale=st.floats(0.01, 100.0),
    shift=st.floats(-100.0, 100.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_layer_norm_output_has_mean_0_variance_1_whatever_the_scale_and_shift(
    d, scale, shift, seed
):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, d, generator=g, dtype=torch.float64)
    # eps far below any row's variance (two random values can be close: a variance of
    # 1e-6 with eps = 1e-12 already moves the output by 1e-5 relative after scaling)
    norm = LayerNorm(d, eps=1e-30).double()
    y = norm(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(
        y.var(-1, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(norm(scale * x + shift), y, atol=1e-6, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 32), scale=st.floats(0.01, 100.0), seed=st.integers(0, 2**31 - 1))
def test_rms_norm_output_has_rms_1_and_ignores_the_scale(d, scale, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, d, generator=g, dtype=torch.float64)
    norm = RMSNorm(d, eps=1e-30).double()  # far below any row's mean square
    y = norm(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(norm(scale * x), y)


def test_rms_norm_does_not_centre():
    x = torch.tensor([[1.0, 2.0, 3.0]])
    assert RMSNorm(3)(x).mean() > 0.5  # a LayerNorm output would have mean 0
    assert abs(LayerNorm(3)(x).mean()) < 1e-6


def test_each_position_is_normalised_on_its_own():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, 8, generator=g)
    for norm in (LayerNorm(8), RMSNorm(8)):
        y = norm(x)
        torch.testing.assert_close(norm(x[2:3, 1:2]), y[2:3, 1:2])  # batch of one, one token


def test_gain_and_bias_are_applied():
    norm = LayerNorm(3)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        norm.bias.copy_(torch.tensor([0.0, 10.0, 0.0]))
    y = norm(torch.tensor([-1.0, 0.0, 1.0]))  # normalised: (-a, 0, a), a = sqrt(1.5)
    a = 1 / torch.sqrt(torch.tensor(2 / 3 + 1e-5))
    torch.testing.assert_close(y, torch.stack([-a, torch.tensor(10.0), 3 * a]))


def test_parameters():
    assert [n for n, _ in LayerNorm(5).named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in LayerNorm(5, bias=False).named_parameters()] == ["weight"]
    assert [n for n, _ in RMSNorm(5).named_parameters()] == ["weight"]


@pytest.mark.parametrize("cls", [LayerNorm, RMSNorm])
def test_errors(cls):
    with pytest.raises(ValueError, match="d_model must be an integer >= 1, got 0"):
        cls(0)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        cls(4, eps=0.0)
    with pytest.raises(ValueError, match=r"x must be \(\.\.\., 4\), got \(2, 3\)"):
        cls(4)(torch.zeros(2, 3))
