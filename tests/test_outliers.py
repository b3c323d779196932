"""Vector-wise int8 products and LLM.int8()'s outlier decomposition
(llmcourse.compression.outliers)."""

from __future__ import annotations

import pytest
import torch

from llmcourse.compression import int8_matmul, llm_int8_matmul, outlier_columns

pytestmark = pytest.mark.usefixtures("one_thread")


def operands(seed: int, outlier: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x, w = torch.randn(16, 64, generator=g), torch.randn(32, 64, generator=g) * 0.05
    if outlier is not None:
        x[:, 5] *= outlier  # one feature dimension with large values in every token
    return x, w


def test_int8_matmul_is_the_product_of_the_quantized_operands():
    x, w = operands(0)
    qx = torch.round(x * 127 / x.abs().amax(1, keepdim=True))
    qw = torch.round(w * 127 / w.abs().amax(1, keepdim=True))
    expected = (
        (qx @ qw.T) * x.abs().amax(1, keepdim=True) * w.abs().amax(1, keepdim=True).T / 127**2
    )
    torch.testing.assert_close(int8_matmul(x, w), expected)
    assert (int8_matmul(x, w) - x @ w.T).abs().max() < 0.05 * (x @ w.T).abs().max()


def test_an_outlier_feature_spoils_int8_and_the_decomposition_repairs_it():
    x, w = operands(1, outlier=60.0)
    exact = x @ w.T
    assert outlier_columns(x).nonzero().flatten().tolist() == [5]
    plain = (int8_matmul(x, w) - exact).abs().mean()
    fixed = (llm_int8_matmul(x, w) - exact).abs().mean()
    clean_x, _ = operands(1)
    clean = (int8_matmul(clean_x, w) - clean_x @ w.T).abs().mean()
    assert plain > 5 * fixed and fixed < 2 * clean


def test_without_outliers_the_decomposition_is_the_int8_product():
    x, w = operands(2)
    x = x.clamp(-5, 5)
    assert not outlier_columns(x).any()
    torch.testing.assert_close(llm_int8_matmul(x, w), int8_matmul(x, w))
    everything = llm_int8_matmul(x, w, threshold=1e-6)  # every column is an outlier
    torch.testing.assert_close(everything, x @ w.T)


def test_bad_operands():
    with pytest.raises(ValueError, match="share d_in"):
        int8_matmul(torch.randn(2, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="2-D floating-point"):
        llm_int8_matmul(torch.randn(2, 3, 4), torch.randn(4, 4))
    with pytest.raises(ValueError, match="threshold must be a finite number > 0"):
        outlier_columns(torch.randn(2, 3), 0.0)
