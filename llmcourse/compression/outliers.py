"""Outliers and the LLM.int8() fix: vector-wise int8 matrix products with the outlier
features kept in 16 bits (Dettmers et al., 2022).

An absmax constant is set by the largest magnitude of its group, so one large value
stretches the grid for all the others: with a value 60 times the typical size in an
int8 group, the typical values fall into the few codes around 0 and most of the 255
codes hold nothing. Dettmers et al. found that Transformers from about 6.7 billion
parameters on have a few *feature dimensions* of their hidden states with such
magnitudes (up to 20 times the rest) in almost every token, so int8 products of those
activations lose the model's quality.

**LLM.int8()** multiplies ``X: (tokens, d_in)`` by ``W^T`` (``W: (d_out, d_in)``) in two
parts. The columns of ``X`` in which some value exceeds a threshold (6.0 in the paper)
are the outlier features; they and the matching columns of ``W`` are multiplied in 16
bits (here: in the input's dtype). All other columns are quantized *vector-wise*, with
one absmax constant per row of ``X`` (per token) and one per row of ``W`` (per output),
multiplied in integers and rescaled by the outer product of the constants::

    X W^T = X_out W_out^T + (c_X c_W^T / 127^2) * (Q(X_rest) Q(W_rest)^T).

:func:`int8_matmul` is the vector-wise product alone; :func:`llm_int8_matmul` adds the
outlier decomposition. The integer products are exact (int32 accumulation), as in the
hardware kernels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from llmcourse.checks import check_float_tensor, check_positive


def _check_operands(x: Tensor, weight: Tensor) -> None:
    check_float_tensor("x", x, ndim=2)
    check_float_tensor("weight", weight, ndim=2)
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"x (tokens, d_in) and weight (d_out, d_in) must share d_in, got "
            f"{tuple(x.shape)} and {tuple(weight.shape)}"
        )


def _rowwise_int8(t: Tensor) -> tuple[Tensor, Tensor]:
    """Absmax int8 codes of every row of ``t`` (as int32) and the rows' absmax."""
    absmax = t.abs().amax(dim=1, keepdim=True).float()
    scale = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    codes = torch.round(t.float() * (127.0 / scale)).clamp(-127, 127).to(torch.int32)
    return codes, scale


def int8_matmul(x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight.T`` with both quantized vector-wise to int8: ``x: (tokens, d_in)``
    with one constant per token, ``weight: (d_out, d_in)`` with one per output; the codes
    multiplied exactly in int32. Returns ``(tokens, d_out)`` in ``x``'s dtype."""
    _check_operands(x, weight)
    qx, cx = _rowwise_int8(x)
    qw, cw = _rowwise_int8(weight)
    return ((qx @ qw.T).float() * (cx * cw.T / 127**2)).to(x.dtype)


def outlier_columns(x: Tensor, threshold: float = 6.0) -> Tensor:
    """``(d_in,)`` bool: the feature dimensions of ``x: (tokens, d_in)`` in which some
    magnitude exceeds ``threshold``."""
    check_float_tensor("x", x, ndim=2)
    check_positive("threshold", threshold)
    return (x.abs() > threshold).any(dim=0)


def llm_int8_matmul(x: Tensor, weight: Tensor, threshold: float = 6.0) -> Tensor:
    """``x @ weight.T`` as LLM.int8() computes it: the outlier columns of ``x``
    (:func:`outlier_columns`) in ``x``'s precision, the rest by :func:`int8_matmul`.
    ``x: (tokens, d_in)``, ``weight: (d_out, d_in)`` -> ``(tokens, d_out)``."""
    _check_operands(x, weight)
    outliers = outlier_columns(x, threshold)
    regular = ~outliers
    if not bool(regular.any()):  # every feature is an outlier: nothing to quantize
        return x @ weight.T
    return x[:, outliers] @ weight[:, outliers].T + int8_matmul(x[:, regular], weight[:, regular])
