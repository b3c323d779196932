"""Layer normalisation and RMS normalisation, written out.

Both rescale each vector on its own, over its ``d`` features, so that the result does
not depend on the other examples of the batch nor on the other positions of the
sequence (batch normalisation, by contrast, averages each feature over the batch):

    LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta    (Ba et al., 2016)
    RMSNorm(x)   = x / sqrt(mean(x^2) + eps) * gamma                    (Zhang and Sennrich, 2019)

``mean`` and ``var`` are over the last dimension, and ``var`` is the biased variance
(divided by ``d``). RMSNorm skips the centring and the shift ``beta``: it is cheaper
and works as well in practice, which is why LLaMA-style models use it.

:func:`layer_norm` and :func:`rms_norm` are the formulas written out. The modules
:class:`LayerNorm` and :class:`RMSNorm` compute the same with PyTorch's fused kernels
(``F.layer_norm``, ``F.rms_norm``: one pass over the data instead of one per
operation, and a hand-written backward), which makes a small Transformer train several
percent faster; the tests check that the formulas, the modules and ``torch.nn``'s
layers agree. The parameter names (``weight`` = gamma, ``bias`` = beta) and defaults
follow ``torch.nn.LayerNorm`` and ``torch.nn.RMSNorm``, so their state dicts load into
ours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import check_int, check_positive


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor | None, eps: float = 1e-5) -> Tensor:
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last dimension, written out;
    ``x: (..., d)``, ``weight`` and ``bias``: ``(d,)`` (``bias`` may be None)."""
    mean = x.mean(dim=-1, keepdim=True)
    var = (x - mean).pow(2).mean(dim=-1, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps) * weight
    return y + bias if bias is not None else y


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dimension, written out;
    ``x: (..., d)``, ``weight: (d,)``."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


class _Norm(nn.Module):
    def __init__(self, d_model: int, eps: float) -> None:
        super().__init__()
        check_int("d_model", d_model)
        check_positive("eps", eps)
        self.d_model, self.eps = d_model, eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def _check(self, x: Tensor) -> None:
        if x.ndim < 1 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (..., {self.d_model}), got {tuple(x.shape)}")

    def extra_repr(self) -> str:
        return f"{self.d_model}, eps={self.eps:g}"


class LayerNorm(_Norm):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last dimension
    (:func:`layer_norm`, computed by the fused kernel).

    Args:
        d_model: the size of the last dimension of ``x``.
        eps: added to the variance, for numerical safety.
        bias: learn the shift ``beta`` (``bias``); without it the output has mean 0
            times ``weight``.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__(d_model, eps)
        if bias:
            self.bias = nn.Parameter(torch.zeros(d_model))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (..., d_model)`` -> the same shape."""
        self._check(x)
        return F.layer_norm(x, (self.d_model,), self.weight, self.bias, self.eps)


class RMSNorm(_Norm):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dimension (:func:`rms_norm`,
    computed by the fused kernel).

    Args:
        d_model: the size of the last dimension of ``x``.
        eps: added to the mean square, for numerical safety.
    """

    def __init__(self, d_model: int, eps: float = 1e-6) -> None:
        super().__init__(d_model, eps)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (..., d_model)`` -> the same shape."""
        self._check(x)
        return F.rms_norm(x, (self.d_model,), self.weight, self.eps)
