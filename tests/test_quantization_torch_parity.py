"""Integer quantization against PyTorch's own: with the same scale and zero point, the codes
of ``absmax_quantize`` and ``zeropoint_quantize`` equal ``torch.quantize_per_tensor`` and
``torch.quantize_per_channel`` (round half to even, multiply by the reciprocal of the
scale, clamp), and dequantizing gives the same numbers."""

from __future__ import annotations

import warnings

import pytest
import torch

from llmcourse.compression import absmax_quantize, dequantize, zeropoint_quantize

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:.*quantize.*deprecated:UserWarning"),
]


def inputs(seed: int, shape=(6, 40)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * torch.rand(shape[0], 1, generator=g) * 5
    # values on the rounding boundaries: k + 1/2 steps, which round to the even neighbour
    x[0, :9] = torch.arange(-4, 5) + 0.5
    x[0, 9] = 127.0 * 2  # the largest magnitude of row 0: its step is exactly 2.0
    return x


@pytest.mark.parametrize("seed", range(20))
def test_absmax_int8_per_tensor_equals_quantize_per_tensor(seed):
    x = inputs(seed)
    q = absmax_quantize(x, bits=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = torch.quantize_per_tensor(x, float(q.scale), 0, torch.qint8)
    assert torch.equal(q.codes.reshape(x.shape), reference.int_repr())
    assert torch.equal(dequantize(q), reference.dequantize())


@pytest.mark.parametrize("seed", range(20))
def test_zeropoint_uint8_per_tensor_equals_quantize_per_tensor(seed):
    x = inputs(seed) + 1.5  # an asymmetric range
    q = zeropoint_quantize(x, bits=8)
    reference = torch.quantize_per_tensor(x, float(q.scale), int(q.zero_point), torch.quint8)
    assert torch.equal(q.codes.reshape(x.shape), reference.int_repr())
    assert torch.equal(dequantize(q), reference.dequantize())


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("axis", [0, 1])
def test_per_channel_equals_quantize_per_channel(seed, axis):
    x = inputs(seed)
    q = absmax_quantize(x, bits=8, axis=axis)
    scales = q.scale.flatten().double()
    zeros = torch.zeros(x.shape[axis], dtype=torch.long)
    reference = torch.quantize_per_channel(x, scales, zeros, axis, torch.qint8)
    codes = q.codes.reshape(x.movedim(axis, 0).shape).movedim(0, axis)
    assert torch.equal(codes, reference.int_repr())
    assert torch.equal(dequantize(q), reference.dequantize())
    q = zeropoint_quantize(x, bits=8, axis=axis)
    reference = torch.quantize_per_channel(
        x, q.scale.flatten().double(), q.zero_point.flatten().long(), axis, torch.quint8
    )
    codes = q.codes.reshape(x.movedim(axis, 0).shape).movedim(0, axis)
    assert torch.equal(codes, reference.int_repr())
    assert torch.equal(dequantize(q), reference.dequantize())


def test_halves_round_to_even_and_values_beyond_the_range_clamp():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -2.5, 127.0, 3.49])
    q = absmax_quantize(x, bits=8)  # step 1.0
    assert q.codes.flatten().tolist() == [0, 2, 2, 0, -2, 127, 3]
    reference = torch.quantize_per_tensor(x, 1.0, 0, torch.qint8).int_repr()
    assert torch.equal(q.codes.flatten(), reference)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_the_extremes_take_the_extreme_codes(bits):
    x = inputs(3) + 0.7
    q = absmax_quantize(x, bits)
    top = 2 ** (bits - 1) - 1
    assert q.codes.max() == top or q.codes.min() == -top
    assert q.codes.abs().max() <= top
    q = zeropoint_quantize(x, bits)
    assert q.codes.max() == 2**bits - 1 and q.codes.min() == 0


@pytest.mark.parametrize("seed", [1390, 2241])
def test_values_a_rounding_error_from_a_half_step(seed):
    # These inputs hold a value whose x / Delta + z is within a float32 rounding of a half
    # step: PyTorch's per-tensor kernel (one rounding, fused) and its per-channel kernel (two
    # roundings) give it different codes, and each granularity here follows its kernel.
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 64, generator=g) * torch.rand(8, 1, generator=g) * 10
    x = x + torch.randn(1, generator=g)
    q = zeropoint_quantize(x)
    reference = torch.quantize_per_tensor(x, float(q.scale), int(q.zero_point), torch.quint8)
    assert torch.equal(q.codes.reshape(x.shape), reference.int_repr())
    q = zeropoint_quantize(x, axis=0)
    reference = torch.quantize_per_channel(
        x, q.scale.flatten().double(), q.zero_point.flatten().long(), 0, torch.quint8
    )
    assert torch.equal(q.codes.reshape(x.shape), reference.int_repr())
