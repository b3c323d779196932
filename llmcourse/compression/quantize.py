"""Integer quantization: absmax (symmetric) and zero-point (asymmetric), per tensor, per
channel or block by block.

A float32 weight takes 32 bits. Quantization stores instead a small integer *code* per
number and a few float *constants* per group of numbers, and maps codes back
(*dequantizes*) when the numbers are needed.

**Absmax** (symmetric) with ``b`` bits uses the codes ``-q .. q``, ``q = 2^(b-1) - 1``
(``-127 .. 127`` for int8), and one constant per group, the largest magnitude ``c``::

    code = round(x q / c),       x_hat = code c / q.

**Zero-point** (asymmetric, min-max) uses all ``2^b`` codes ``0 .. 2^b - 1`` over the
group's range ``[min, max]`` (widened to include 0, so that 0 is exact), with a step
``Delta = (max - min) / (2^b - 1)`` and an integer *zero point* ``z = round(-min /
Delta)``, the code of 0::

    code = clamp(round(x / Delta + z), 0, 2^b - 1),     x_hat = (code - z) Delta.

Rounding is to the nearest integer, halves to even; ``x / Delta`` is computed as
``x * (1 / Delta)`` in float32 and the zero point is added before rounding to an
integer, as ``torch.quantize_per_tensor`` and ``torch.quantize_per_channel`` do on the
CPU, so that the codes are equal (``tests/test_quantization_torch_parity.py``). One
detail differs between those two: the per-tensor kernel computes ``x * (1 / Delta) + z``
with a single rounding to float32 (a fused multiply-add), the per-channel kernel with
two; the result differs, rarely, for a value within a float32 rounding error of a half
step, and each granularity here follows its PyTorch counterpart.

**Granularity**: the constants can be shared by the whole tensor (``axis=None,
block_size=None``), by each slice along ``axis`` (per channel: ``axis=0`` gives every
output row of a linear layer its own constants), or by each block of ``block_size``
consecutive numbers of the flattened tensor (block-wise, as in bitsandbytes and QLoRA).
Smaller groups cost more constants but fit each range better: one outlier then spoils
only its own block.

A :class:`Quantized` holds codes and constants; :func:`dequantize` maps them back, and
:attr:`Quantized.nbytes` is the storage they need with the codes packed at ``bits`` bits
each. :mod:`llmcourse.compression.codebook` quantizes to a table of values instead (the
2-bit example, NF4) with the same groups and the same :class:`Quantized`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from llmcourse.checks import check_choice, check_float_tensor, check_int, check_int_in

SCHEMES = ("absmax", "zeropoint")
BITS = (2, 3, 4, 5, 6, 7, 8)
"""The code widths the integer schemes support."""


@dataclass(frozen=True)
class Layout:
    """How a tensor of ``shape`` was cut into groups that share constants: per tensor
    (one group), per channel along ``axis``, or in blocks of ``block_size``."""

    shape: tuple[int, ...]
    axis: int | None = None
    block_size: int | None = None

    @property
    def granularity(self) -> str:
        """``"tensor"``, ``"channel"`` or ``"block"``."""
        if self.axis is not None:
            return "channel"
        return "tensor" if self.block_size is None else "block"


def group(
    x: Tensor, axis: int | None = None, block_size: int | None = None
) -> tuple[Tensor, Layout]:
    """``x`` as a ``(groups, group_size)`` matrix whose rows share constants, and its layout.

    Args:
        x: any floating-point tensor.
        axis: per channel: one group per index along ``axis`` (``x.movedim(axis, 0)``
            flattened row by row).
        block_size: block-wise: consecutive blocks of ``block_size`` numbers of the
            flattened tensor; it must divide ``x.numel()``.

    With neither, the whole tensor is one group.

    Raises:
        ValueError: both ``axis`` and ``block_size``, an axis out of range, or a block size
            that does not divide the number of elements.
    """
    check_float_tensor("x", x)
    if x.numel() == 0:
        raise ValueError("x must have at least one element")
    layout = Layout(tuple(x.shape), axis, block_size)
    if axis is not None and block_size is not None:
        raise ValueError("give axis (per channel) or block_size (block-wise), not both")
    if axis is not None:
        check_int_in("axis", axis, -x.ndim, x.ndim - 1)
        axis = axis % x.ndim
        return x.movedim(axis, 0).reshape(x.shape[axis], -1), Layout(tuple(x.shape), axis)
    if block_size is not None:
        check_int("block_size", block_size)
        if x.numel() % block_size:
            raise ValueError(
                f"block_size {block_size} does not divide the tensor's {x.numel()} elements"
            )
        return x.reshape(-1, block_size), layout
    return x.reshape(1, -1), layout


def ungroup(grouped: Tensor, layout: Layout) -> Tensor:
    """The inverse of :func:`group`: ``(groups, group_size)`` back to ``layout.shape``."""
    if layout.axis is None:
        return grouped.reshape(layout.shape)
    moved = (
        layout.shape[layout.axis],
        *layout.shape[: layout.axis],
        *layout.shape[layout.axis + 1 :],
    )
    return grouped.reshape(moved).movedim(0, layout.axis)


@dataclass(frozen=True)
class Quantized:
    """A quantized tensor: codes, the constants of their groups, and how to map back.

    Attributes:
        codes: ``(groups, group_size)`` integer codes: int8 for absmax, uint8 for
            zero-point and for codebooks (indices into ``values``).
        scale: ``(groups, 1)`` float32: ``c / q`` (absmax), ``Delta`` (zero-point) or the
            absmax ``c`` (codebook); or itself a :class:`Quantized` of those constants
            (double quantization, :func:`llmcourse.compression.codebook.double_quantize`).
        bits: bits per code.
        layout: the groups (:func:`group`).
        zero_point: ``(groups, 1)`` uint8, the code of 0 (zero-point scheme only).
        values: the codebook, ``(2^bits,)`` float32 (codebook schemes only).
        offset: a 0-d float32 added after dequantizing (the mean that double
            quantization subtracts from the constants), or None.
    """

    codes: Tensor
    scale: Tensor | Quantized
    bits: int
    layout: Layout
    zero_point: Tensor | None = None
    values: Tensor | None = None
    offset: Tensor | None = None

    @property
    def scheme(self) -> str:
        """``"absmax"``, ``"zeropoint"`` or ``"codebook"``."""
        if self.values is not None:
            return "codebook"
        return "absmax" if self.zero_point is None else "zeropoint"

    @property
    def numel(self) -> int:
        return self.codes.numel()

    @property
    def nbytes(self) -> int:
        """The bytes of a compact storage: the codes packed at ``bits`` bits each, the
        constants (float32, or their own quantized storage), zero points at ``bits`` bits
        each and the offset (4 bytes). A codebook is part of the data type, not of the
        tensor, and is not counted."""
        total = math.ceil(self.codes.numel() * self.bits / 8)
        if isinstance(self.scale, Quantized):
            total += self.scale.nbytes
        else:
            total += self.scale.numel() * 4
        if self.zero_point is not None:
            total += math.ceil(self.zero_point.numel() * self.bits / 8)
        if self.offset is not None:
            total += 4
        return total

    @property
    def bits_per_value(self) -> float:
        """``8 nbytes / numel``: the storage per number, constants included."""
        return 8 * self.nbytes / self.numel


def check_bits(bits: object) -> int:
    """``bits`` if it is one of :data:`BITS`."""
    check_choice("bits", bits, BITS)
    return bits


def absmax_quantize(
    x: Tensor, bits: int = 8, axis: int | None = None, block_size: int | None = None
) -> Quantized:
    """Symmetric quantization to the codes ``-q .. q``, ``q = 2^(bits-1) - 1``, with one
    constant per group (:func:`group`): ``code = round(x / s)``, ``s = absmax / q``. A group
    of zeros gets ``s = 1``.

    Raises:
        ValueError: a bits value outside :data:`BITS`, or bad groups (see :func:`group`).
    """
    check_bits(bits)
    grouped, layout = group(x, axis, block_size)
    grouped = grouped.float()
    q = 2 ** (bits - 1) - 1
    absmax = grouped.abs().amax(dim=1, keepdim=True)
    scale = torch.where(absmax > 0, absmax / q, torch.ones_like(absmax))
    codes = torch.round(grouped * (1.0 / scale)).clamp(-q, q).to(torch.int8)
    return Quantized(codes, scale, bits, layout)


def zeropoint_quantize(
    x: Tensor, bits: int = 8, axis: int | None = None, block_size: int | None = None
) -> Quantized:
    """Asymmetric (min-max) quantization to the codes ``0 .. 2^bits - 1``: per group
    (:func:`group`), the range ``[min(min x, 0), max(max x, 0)]`` in ``2^bits - 1`` steps
    ``Delta``, the zero point ``z = round(-min / Delta)``, and ``code = clamp(round(x /
    Delta + z))``. A group of zeros gets ``Delta = 1``.

    Raises:
        ValueError: a bits value outside :data:`BITS`, or bad groups (see :func:`group`).
    """
    check_bits(bits)
    grouped, layout = group(x, axis, block_size)
    grouped = grouped.float()
    top = 2**bits - 1
    low = grouped.amin(dim=1, keepdim=True).clamp(max=0)
    high = grouped.amax(dim=1, keepdim=True).clamp(min=0)
    step = (high - low) / top
    scale = torch.where(step > 0, step, torch.ones_like(step))
    zero_point = torch.round(-low / scale).clamp(0, top)
    inverse = 1.0 / scale
    if layout.granularity == "tensor":  # one rounding to float32, a fused multiply-add
        # (exact in float64: the product of two float32 numbers plus a small integer)
        shifted = (grouped.double() * inverse.double() + zero_point.double()).float()
    else:  # two roundings: the product, then the sum
        shifted = grouped * inverse + zero_point
    codes = torch.round(shifted).clamp(0, top).to(torch.uint8)
    return Quantized(codes, scale, bits, layout, zero_point=zero_point.to(torch.uint8))


def quantize(
    x: Tensor,
    scheme: str = "absmax",
    bits: int = 8,
    axis: int | None = None,
    block_size: int | None = None,
) -> Quantized:
    """:func:`absmax_quantize` or :func:`zeropoint_quantize`, by name (:data:`SCHEMES`)."""
    check_choice("scheme", scheme, SCHEMES)
    quantizer = absmax_quantize if scheme == "absmax" else zeropoint_quantize
    return quantizer(x, bits, axis, block_size)


def scale_of(q: Quantized) -> Tensor:
    """The ``(groups, 1)`` float32 constants of ``q``, dequantized first if they are
    themselves quantized."""
    return dequantize(q.scale) if isinstance(q.scale, Quantized) else q.scale


def dequantize(q: Quantized) -> Tensor:
    """The float32 tensor that ``q`` stands for, in its original shape:
    ``code s`` (absmax), ``(code - z) Delta`` (zero-point) or ``values[code] c``
    (codebook), plus ``q.offset`` if any."""
    scale = scale_of(q)
    if q.values is not None:
        grouped = q.values[q.codes.long()] * scale
    elif q.zero_point is not None:
        grouped = (q.codes.float() - q.zero_point.float()) * scale
    else:
        grouped = q.codes.float() * scale
    if q.offset is not None:
        grouped = grouped + q.offset
    return ungroup(grouped, q.layout)


def fake_quantize(x: Tensor, scheme: str = "absmax", bits: int = 8, **groups: int | None) -> Tensor:
    """``dequantize(quantize(x, ...))``: ``x`` with the error of quantization, in float32
    (how the quality of a quantized model is measured)."""
    return dequantize(quantize(x, scheme, bits, **groups))


def pack_codes(codes: Tensor, bits: int) -> Tensor:
    """Pack unsigned codes ``< 2^bits`` (any shape, ``bits`` in 1, 2, 4, 8) into a flat
    uint8 tensor, ``8 / bits`` codes per byte, the first in the lowest bits. The number
    of codes must be a multiple of ``8 / bits``."""
    check_choice("bits", bits, (1, 2, 4, 8))
    per_byte = 8 // bits
    flat = codes.reshape(-1).to(torch.uint8)
    if flat.numel() % per_byte:
        raise ValueError(f"{flat.numel()} codes do not fill whole bytes of {per_byte} codes")
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=codes.device)
    return (flat.view(-1, per_byte) << shifts).sum(dim=1, dtype=torch.uint8)


def unpack_codes(packed: Tensor, bits: int) -> Tensor:
    """The inverse of :func:`pack_codes`: a flat uint8 tensor of ``8 / bits`` times as
    many codes."""
    check_choice("bits", bits, (1, 2, 4, 8))
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=packed.device)
    mask = torch.tensor(2**bits - 1, dtype=torch.uint8, device=packed.device)
    return ((packed[:, None] >> shifts) & mask).reshape(-1)
