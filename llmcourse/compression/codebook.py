"""Quantization to a table of values: the 2-bit example, NormalFloat (NF4) and double
quantization (Dettmers et al., 2023).

An integer code need not stand for an evenly spaced number. A *codebook* of ``2^k``
values in ``[-1, 1]`` can be spaced as the data are: each group of numbers (per tensor,
channel or block, as in :mod:`llmcourse.compression.quantize`) is divided by its absmax
``c``, each normalised number is stored as the index of the nearest value in the table,
and dequantizing multiplies the value back by ``c``::

    code = argmin_i |x / c - values[i]|,      x_hat = values[code] c.

A number exactly halfway between two values goes to the larger one (the notes' 2-bit
example rounds 0.4, halfway between 0.3 and 0.5, to 0.5).

**NormalFloat** (:func:`normal_float_values`): trained weights are roughly normal, so
QLoRA places the ``2^k`` values at quantiles of ``N(0, 1)``, which gives each value the
same share of normally distributed numbers: an *information-theoretically optimal* type
for such data, up to the constraint that 0 be exact. With ``2^(k-1)`` quantiles for the
positive half and ``2^(k-1) - 1`` for the negative half (so that 0 is a value and the
type is asymmetric by one value), from probabilities evenly spaced between 1/2 and an
offset ``delta`` close to 1, then divided by the largest::

    positive: Phi^-1(linspace(delta, 1/2, 2^(k-1) + 1)[:-1]),
    negative: -Phi^-1(linspace(delta, 1/2, 2^(k-1))[:-1]),     and 0.

QLoRA takes ``delta`` halfway between ``1 - 1/(2(2^k - 1))`` and ``1 - 1/(2 2^k)``
(0.9677083 for ``k = 4``, to the seven decimals its code uses); with float32
probabilities, as there, the 16 values of NF4 are bit-for-bit those published with the
paper (:data:`QLORA_NF4`, tested).

**Double quantization** (:func:`double_quantize`): with blocks of 64 numbers, a float32
absmax per block costs ``32 / 64 = 0.5`` bits per number. QLoRA quantizes those constants
in turn, in blocks of 256, to 8 bits after subtracting their mean (they are all
positive): ``8 / 64 + 32 / (64 * 256) = 0.127`` bits per number.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from llmcourse.checks import check_float_tensor, check_int
from llmcourse.compression.quantize import (
    Quantized,
    absmax_quantize,
    check_bits,
    group,
)

QLORA_NF4 = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)  # fmt: skip
"""The 16 values of NF4 as published with QLoRA (its appendix and bitsandbytes)."""


def check_codebook(values: object) -> Tensor:
    """``values`` if it is a 1-D float tensor of ``2^k`` (``k`` in 1 .. 8) strictly
    increasing numbers in ``[-1, 1]``."""
    check_float_tensor("values", values, ndim=1)
    n = len(values)
    if n < 2 or n > 256 or n & (n - 1):
        raise ValueError(f"a codebook holds 2, 4, ..., 256 values, got {n}")
    if not bool((values[1:] > values[:-1]).all()):
        raise ValueError("the codebook's values must be strictly increasing")
    if not bool((values.abs() <= 1).all()):
        raise ValueError("the codebook's values must lie in [-1, 1]")
    return values


def codebook_quantize(
    x: Tensor, values: Tensor, axis: int | None = None, block_size: int | None = None
) -> Quantized:
    """Quantize ``x`` to the nearest of ``values`` after dividing each group by its absmax.

    Args:
        x: any floating-point tensor.
        values: the codebook (:func:`check_codebook`), e.g. :func:`normal_float_values`.
        axis, block_size: the groups (:func:`llmcourse.compression.quantize.group`).

    Returns:
        A :class:`~llmcourse.compression.quantize.Quantized` with uint8 codes (indices into
        ``values``), ``scale`` the groups' absmax (0 for a group of zeros) and
        ``values`` the codebook in float32.
    """
    values = check_codebook(values).float()
    grouped, layout = group(x, axis, block_size)
    grouped = grouped.float()
    absmax = grouped.abs().amax(dim=1, keepdim=True)
    inverse = torch.where(absmax > 0, 1.0 / absmax, torch.zeros_like(absmax))
    midpoints = (values[1:] + values[:-1]) / 2
    codes = torch.searchsorted(midpoints.to(grouped.device), grouped * inverse, right=True)
    bits = int(math.log2(len(values)))
    return Quantized(codes.to(torch.uint8), absmax, bits, layout, values=values.to(x.device))


def normal_float_offset(bits: int) -> float:
    """QLoRA's ``delta``: halfway between ``1 - 1/(2(2^k - 1))`` and ``1 - 1/(2 2^k)``,
    rounded to seven decimals (0.9677083 for 4 bits)."""
    check_bits(bits)
    return round(1 - (1 / (2 * (2**bits - 1)) + 1 / (2 * 2**bits)) / 2, 7)


def normal_float_values(bits: int = 4) -> Tensor:
    """The ``2^bits`` values of the NormalFloat type, ascending, float32, from -1 to 1
    (NF4 for ``bits=4``): quantiles of ``N(0, 1)`` as in the module docstring.

    Raises:
        ValueError: ``bits`` outside 2 .. 8.
    """
    check_bits(bits)
    delta, half = normal_float_offset(bits), 2 ** (bits - 1)
    positive = torch.special.ndtri(torch.linspace(delta, 0.5, half + 1)[:-1].double())
    negative = -torch.special.ndtri(torch.linspace(delta, 0.5, half)[:-1].double())
    values = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative]).float()
    values = values.sort().values
    return values / values.max()


def nf4_quantize(x: Tensor, block_size: int = 64, double_quant: bool = False) -> Quantized:
    """QLoRA's storage of a weight: NF4 codes in blocks of ``block_size`` with one absmax
    each, and with ``double_quant`` those absmax constants quantized again
    (:func:`double_quantize`)."""
    q = codebook_quantize(x, normal_float_values(4), block_size=block_size)
    return double_quantize(q) if double_quant else q


def double_quantize(q: Quantized, block_size: int = 256, bits: int = 8) -> Quantized:
    """``q`` with its ``(groups, 1)`` float32 constants replaced by their own quantized
    form: their mean is subtracted (kept as ``offset``, 4 bytes), then absmax
    quantization to ``bits`` bits in blocks of ``block_size`` constants (one block when
    there are fewer constants than that).

    Raises:
        ValueError: the constants are already quantized, or ``block_size`` does not divide
            their number.
    """
    if isinstance(q.scale, Quantized):
        raise ValueError("the constants are already quantized")
    check_int("block_size", block_size)
    check_bits(bits)
    constants = q.scale
    mean = constants.mean()
    block_size = min(block_size, constants.numel())
    inner = absmax_quantize(constants - mean, bits, block_size=block_size)
    inner = Quantized(inner.codes, inner.scale, inner.bits, inner.layout, offset=mean)
    return Quantized(q.codes, inner, q.bits, q.layout, q.zero_point, q.values, q.offset)
