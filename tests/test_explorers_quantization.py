"""Tests of llmcourse.explorers.quantization: levels, errors and storage of a quantized
weight matrix of the shipped model, and the widget."""

from __future__ import annotations

import pytest
import torch

from llmcourse.compression import (
    absmax_quantize,
    codebook_quantize,
    dequantize,
    normal_float_values,
    quantize_weight,
    zeropoint_quantize,
)
from llmcourse.explorers import (
    WIDGET_VIEW,
    QuantizationChart,
    block_sizes,
    explore_quantization,
    group_levels,
    quantization_view,
)
from llmcourse.models import load_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weight():
    model, _ = load_pretrained()
    return model.transformer.blocks[1].ffn.up.weight.detach()  # (512, 128), as in Chapter 13


def test_levels_of_absmax_zero_point_and_codebooks_by_hand():
    x = torch.tensor([0.5, -1.0, 0.25, 2.0, 0.1, -0.3])
    q = absmax_quantize(x, bits=3, block_size=3)  # blocks [0.5, -1, 0.25], [2, 0.1, -0.3]
    assert group_levels(q, 0).tolist() == pytest.approx([-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3, 1])
    assert group_levels(q, 1).tolist() == pytest.approx([-2, -4 / 3, -2 / 3, 0, 2 / 3, 4 / 3, 2])
    q = zeropoint_quantize(torch.tensor([0.0, 3.0]), bits=2)  # step 1, zero point 0
    assert group_levels(q, 0).tolist() == [0.0, 1.0, 2.0, 3.0]
    values = torch.tensor([-1.0, 0.3, 0.5, 1.0])
    q = codebook_quantize(torch.tensor([10.0, -3.0, 5.0, 4.0]), values)
    assert group_levels(q, 0).tolist() == pytest.approx([-10, 3, 5, 10])
    with pytest.raises(ValueError, match=r"index must be a group in \[0, 1\)"):
        group_levels(q, 1)


@pytest.mark.parametrize("scheme", ["absmax", "zeropoint", "normalfloat"])
def test_every_dequantized_weight_is_a_level_of_its_block(weight, scheme):
    q = quantize_weight(weight, scheme, 3, 64)
    restored = dequantize(q).reshape(-1, 64)
    for index in (0, 17, 1000):
        levels = group_levels(q, index)
        assert len(levels) == (7 if scheme == "absmax" else 8)
        assert torch.isin(restored[index], levels).all()


@pytest.mark.parametrize("scheme", ["absmax", "zeropoint", "normalfloat"])
def test_the_view_measures_the_quantizer(weight, scheme):
    view = quantization_view(weight, scheme, 4, 64)
    q = quantize_weight(weight, scheme, 4, 64)
    error = (dequantize(q).reshape(weight.shape) - weight).pow(2).sum() / weight.pow(2).sum()
    assert view.relative_error == pytest.approx(float(error))
    assert view.bits_per_weight == pytest.approx(4 + (32 + 4 * (scheme == "zeropoint")) / 64)
    ranges = weight.reshape(-1, 64).abs().amax(1)
    widest = int(ranges.argmax())
    assert torch.equal(view.widest_levels, group_levels(q, widest))
    # the outer levels reach the block's largest magnitude: exactly for the symmetric
    # schemes, within a step for zero-point (its range [min, max] is cut into steps)
    step = float(view.widest_levels[1] - view.widest_levels[0])
    slack = step if scheme == "zeropoint" else 1e-6 * float(ranges.max())
    assert abs(float(view.widest_levels.abs().max()) - float(ranges.max())) <= slack
    typical = float(view.typical_levels.abs().max())
    assert abs(typical - float(ranges.median())) <= step


def test_what_the_chapter_says_about_blocks_and_bits(weight):
    errors = {
        (scheme, bits, size): quantization_view(weight, scheme, bits, size).relative_error
        for scheme in ("absmax", "normalfloat")
        for bits in (3, 4, 8)
        for size in (64, weight.numel())
    }
    for bits in (3, 4, 8):  # smaller blocks fit each range better
        assert errors["absmax", bits, 64] < errors["absmax", bits, weight.numel()]
    for size in (64, weight.numel()):  # each bit divides the error by about 4
        ratio = errors["absmax", 3, size] / errors["absmax", 4, size]
        assert 2.5 < ratio < 6
    assert errors["normalfloat", 4, 64] < errors["absmax", 4, 64]  # NF4 fits normal weights


def test_block_sizes():
    assert block_sizes(512 * 128) == [2**i for i in range(4, 16)] + [65536]
    assert block_sizes(96) == [16, 32, 96]
    assert block_sizes(96, smallest=8) == [8, 16, 32, 96]


def test_the_chart_sets_its_lines(weight):
    sizes = block_sizes(weight.numel())
    chart = QuantizationChart(weight, sizes)
    curve = [quantization_view(weight, "absmax", 4, s) for s in sizes]
    chart.update(curve[2], curve)
    xs, ys = chart.error_line.get_data()
    assert list(xs) == sizes and list(ys) == [v.relative_error for v in curve]
    assert [seg[0][0] for seg in chart.typical.get_segments()] == curve[2].typical_levels.tolist()
    assert "absmax, 4 bits, blocks of 64" in chart.title.get_text()
    with pytest.raises(ValueError, match="one view per block size"):
        chart.update(curve[2], curve[:3])


def test_the_widget_redraws(weight):
    explorer = explore_quantization(weight)
    assert explorer.values == {"scheme": "absmax", "bits": 4, "block_size": 64}
    first = explorer.output.outputs[0]["data"]["image/png"]
    explorer.controls["bits"].value = 2
    assert explorer.output.outputs[0]["data"]["image/png"] != first
    assert explorer.rendering.text.startswith("absmax, 2 bits, blocks of 64")
    explorer.controls["block_size"].value = weight.numel()
    explorer.controls["scheme"].value = "normalfloat"
    expected = quantization_view(weight, "normalfloat", 2, weight.numel()).relative_error
    assert explorer.rendering.text.endswith(f"error {expected:.2e}")
    assert set(explorer._repr_mimebundle_()) == {"text/plain", WIDGET_VIEW, "image/png"}
    with pytest.raises(ValueError, match="block_size must be one of"):
        explore_quantization(weight, block_size=100)


def test_views_are_validated(weight):
    with pytest.raises(ValueError, match="scheme must be one of"):
        quantization_view(weight, "int4")
    with pytest.raises(ValueError, match="bits must be one of"):
        quantization_view(weight, bits=1)
    with pytest.raises(ValueError, match="does not divide"):
        quantization_view(weight, block_size=100)


def test_normal_float_levels_are_the_codebook_scaled(weight):
    q = codebook_quantize(weight, normal_float_values(4), block_size=64)
    assert torch.allclose(group_levels(q, 5), normal_float_values(4) * q.scale[5])
