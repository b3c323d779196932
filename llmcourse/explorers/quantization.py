"""Explorer of Chapter 13: bits and block size of a quantizer against reconstruction error.

:func:`quantization_view` quantizes one weight matrix with a scheme of
:func:`llmcourse.compression.quantize_weight` (absmax, zero-point or NormalFloat), a
number of bits and a block size, and measures what it costs: the relative squared error
of the dequantized weights, the bits stored per weight (constants included), and the
values the codes of two blocks can stand for (their *levels*: the block with the median
range, and the one with the widest). :func:`explore_quantization` draws the weights'
histogram under those levels, next to the error and the storage of every block size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from llmcourse.checks import check_float_tensor, check_int
from llmcourse.compression.quantize import Layout, Quantized, dequantize, scale_of
from llmcourse.compression.quantized_linear import WEIGHT_SCHEMES, quantize_weight
from llmcourse.explorers.widget import Blitter, Explorer, Rendering


def group_levels(q: Quantized, index: int) -> Tensor:
    """The values that the codes of group ``index`` of ``q`` dequantize to, ascending:
    ``(codes,)`` float32. Computed by :func:`~llmcourse.compression.dequantize` of every
    code with that group's constants (absmax: ``2^bits - 1`` codes; zero-point and
    codebooks: ``2^bits``)."""
    groups = q.codes.shape[0]
    if not isinstance(index, int) or not 0 <= index < groups:
        raise ValueError(f"index must be a group in [0, {groups}), got {index!r}")
    if q.scheme == "absmax":
        top = 2 ** (q.bits - 1) - 1
        codes = torch.arange(-top, top + 1, dtype=torch.int8)
    else:
        codes = torch.arange(2**q.bits).to(torch.uint8)
    zero_point = None if q.zero_point is None else q.zero_point[index : index + 1]
    one_group = Quantized(
        codes=codes[None],
        scale=scale_of(q)[index : index + 1],
        bits=q.bits,
        layout=Layout((len(codes),), block_size=len(codes)),
        zero_point=zero_point,
        values=q.values,
        offset=q.offset,
    )
    return dequantize(one_group).sort().values


@dataclass(frozen=True)
class QuantizationView:
    """One weight matrix quantized with one setting.

    Attributes:
        scheme, bits, block_size: the setting.
        relative_error: ``||W_hat - W||^2 / ||W||^2``.
        bits_per_weight: the storage per weight, codes and constants
            (:attr:`~llmcourse.compression.Quantized.bits_per_value`).
        typical_levels: the levels of the block whose largest magnitude is the median.
        widest_levels: the levels of the block with the largest magnitude.
    """

    scheme: str
    bits: int
    block_size: int
    relative_error: float
    bits_per_weight: float
    typical_levels: Tensor
    widest_levels: Tensor


def quantization_view(
    weight: Tensor, scheme: str = "absmax", bits: int = 4, block_size: int = 64
) -> QuantizationView:
    """Quantize ``weight`` (any shape) in blocks of ``block_size`` consecutive numbers
    (``weight.numel()``: one block) with ``scheme`` and ``bits`` by
    :func:`~llmcourse.compression.quantize_weight`, and measure the result."""
    check_float_tensor("weight", weight)
    check_int("block_size", block_size)
    q = quantize_weight(weight, scheme, bits, block_size)
    weight = weight.detach().float()
    error = (dequantize(q).reshape(weight.shape) - weight).pow(2).sum() / weight.pow(2).sum()
    ranges = weight.reshape(-1, block_size).abs().amax(dim=1)
    order = ranges.argsort()
    return QuantizationView(
        scheme=scheme,
        bits=bits,
        block_size=block_size,
        relative_error=float(error),
        bits_per_weight=q.bits_per_value,
        typical_levels=group_levels(q, int(order[len(order) // 2])),
        widest_levels=group_levels(q, int(order[-1])),
    )


def block_sizes(numel: int, smallest: int = 16) -> list[int]:
    """The powers of two from ``smallest`` that divide ``numel``, then ``numel`` itself
    (one block for the whole tensor)."""
    check_int("numel", numel)
    sizes = [2**i for i in range(int(math.log2(smallest)), int(math.log2(numel)) + 1)]
    return [s for s in sizes if numel % s == 0 and s < numel] + [numel]


ERROR_RANGE = (5e-6, 2.0)
"""The fixed range of the error axis (8 bits in small blocks to 2 bits in one block)."""


class QuantizationChart:
    """Left: the weights' histogram (log scale) with the levels of a typical block (blue
    lines) and of the widest block (red ticks at the bottom). Right: the relative error
    (green) and the bits per weight (purple) of every block size, for the current scheme
    and bits, the current block size circled. The axes are fixed and drawn once
    (:class:`~llmcourse.explorers.widget.Blitter`): a new setting redraws only the lines."""

    def __init__(self, weight: Tensor, sizes: Sequence[int]) -> None:
        values = weight.detach().float().flatten().numpy()
        self.sizes = list(sizes)
        figure = Figure(figsize=(10, 3.6), dpi=80)
        figure.subplots_adjust(left=0.06, right=0.93, top=0.84, bottom=0.15, wspace=0.3)
        hist, curve = figure.subplots(1, 2)
        limit = float(np.abs(values).max()) * 1.05
        counts, edges = np.histogram(values, bins=120, range=(-limit, limit))
        hist.stairs(counts, edges, fill=True, color="0.75")
        top = float(counts.max())
        hist.set(yscale="log", xlabel="weight", ylabel="weights per bin", xlim=(-limit, limit))
        hist.set_ylim(0.8, top * 3)
        self.spans = {"typical": (1.5, top * 3), "widest": (0.8, 1.5)}
        self.typical = hist.vlines([], *self.spans["typical"], color="C0", lw=0.7)
        self.widest = hist.vlines([], *self.spans["widest"], color="C3", lw=1.5)
        hist.set_title("levels of a typical block (blue), of the widest (red)", fontsize=8)
        (self.error_line,) = curve.loglog([], [], "o-", color="C2", ms=3)
        (self.mark,) = curve.loglog([], [], "o", color="k", ms=9, mfc="none")
        curve.set_xlim(min(sizes) / 1.5, max(sizes) * 1.5)
        curve.set_ylim(*ERROR_RANGE)
        curve.set_xlabel("block size (weights per constant)")
        curve.set_ylabel("relative squared error", color="C2")
        storage = curve.twinx()
        (self.bits_line,) = storage.semilogx([], [], "s--", color="C4", ms=3)
        storage.set_ylim(1.5, 10.5)  # 2 bits + 0 to 8 bits + 2 bits of constants
        storage.set_ylabel("bits per weight", color="C4")
        self.title = figure.suptitle("", fontsize=9)
        self.blitter = Blitter(
            figure,
            [self.typical, self.widest, self.error_line, self.mark, self.bits_line, self.title],
        )

    @property
    def figure(self) -> Figure:
        return self.blitter.figure

    def update(self, view: QuantizationView, curve: Sequence[QuantizationView]) -> None:
        """Set the lines to ``view``; ``curve`` holds one view per block size of the chart."""
        if [v.block_size for v in curve] != self.sizes:
            raise ValueError(f"curve must hold one view per block size {self.sizes}")
        for lines, name, levels in (
            (self.typical, "typical", view.typical_levels),
            (self.widest, "widest", view.widest_levels),
        ):
            low, high = self.spans[name]
            lines.set_segments([[(x, low), (x, high)] for x in levels.tolist()])
        self.error_line.set_data(self.sizes, [v.relative_error for v in curve])
        self.mark.set_data([view.block_size], [view.relative_error])
        self.bits_line.set_data(self.sizes, [v.bits_per_weight for v in curve])
        block = "one block" if view.block_size == self.sizes[-1] else f"blocks of {view.block_size}"
        self.title.set_text(
            f"{view.scheme}, {view.bits} bits, {block}: relative squared error "
            f"{view.relative_error:.2e}, {view.bits_per_weight:.2f} bits per weight"
        )

    def rendering(self, view: QuantizationView, curve: Sequence[QuantizationView]) -> Rendering:
        """:meth:`update`, then the chart as a PNG."""
        self.update(view, curve)
        text = f"{view.scheme}, {view.bits} bits, blocks of {view.block_size}: error " + (
            f"{view.relative_error:.2e}"
        )
        return self.blitter.rendering(text)


def explore_quantization(
    weight: Tensor, scheme: str = "absmax", bits: int = 4, block_size: int = 64
) -> Explorer:
    """A widget: choose the scheme, the bits and the block size of a quantizer and watch
    the levels over the weights' histogram, the error and the storage.

    Args:
        weight: the matrix to quantize (its number of elements must be a multiple of 16).
        scheme, bits, block_size: the initial setting (``block_size`` one of
            :func:`block_sizes` of the matrix).

    A new scheme or number of bits quantizes the matrix once per block size (to draw the
    curve) and keeps the results; the axes and the histogram are drawn once.
    """
    weight = weight.detach().float()
    sizes = block_sizes(weight.numel())
    if block_size not in sizes:
        raise ValueError(f"block_size must be one of {sizes}, got {block_size!r}")
    chart = QuantizationChart(weight, sizes)

    curves: dict[tuple[str, int], list[QuantizationView]] = {}

    def render(scheme: str, bits: int, block_size: int) -> Rendering:
        if (scheme, bits) not in curves:  # one quantization per block size, then kept
            curves[scheme, bits] = [quantization_view(weight, scheme, bits, s) for s in sizes]
        curve = curves[scheme, bits]
        return chart.rendering(curve[sizes.index(block_size)], curve)

    style = {"description_width": "initial"}
    labels = [(f"{s:,}" if s < sizes[-1] else f"{s:,} (all)", s) for s in sizes]
    controls = {
        "scheme": ipywidgets.Dropdown(
            options=WEIGHT_SCHEMES, value=scheme, description="scheme", style=style
        ),
        "bits": ipywidgets.IntSlider(value=bits, min=2, max=8, description="bits", style=style),
        "block_size": ipywidgets.SelectionSlider(
            options=labels, value=block_size, description="block size", style=style
        ),
    }
    return Explorer(controls, render, "explorer: bits and block size of a quantizer")
