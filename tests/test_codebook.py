"""Codebook quantization (llmcourse.compression.codebook): the notes' 2-bit example, NF4
against the values published with QLoRA, and double quantization."""

from __future__ import annotations

import math

import pytest
import torch

from llmcourse.compression import (
    QLORA_NF4,
    absmax_quantize,
    codebook_quantize,
    dequantize,
    double_quantize,
    nf4_quantize,
    normal_float_offset,
    normal_float_values,
    scale_of,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_two_bit_example_of_the_notes():
    # map {0: -1, 1: 0.3, 2: 0.5, 3: 1.0}; [10, -3, 5, 4] / 10 = [1, -0.3, 0.5, 0.4]
    q = codebook_quantize(torch.tensor([10.0, -3.0, 5.0, 4.0]), torch.tensor([-1.0, 0.3, 0.5, 1.0]))
    assert q.codes.flatten().tolist() == [3, 1, 2, 2]  # 0.4 is halfway: it goes up, to 0.5
    assert q.scale.item() == 10.0 and q.bits == 2
    assert dequantize(q).tolist() == [10.0, 3.0, 5.0, 5.0]  # -3 comes back as +3


def test_nf4_is_derived_bit_for_bit_as_published():
    assert normal_float_offset(4) == 0.9677083
    values = normal_float_values(4)
    assert values.dtype == torch.float32 and len(values) == 16
    assert torch.equal(values, torch.tensor(QLORA_NF4))


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
def test_normal_float_types(bits):
    values = normal_float_values(bits)
    assert len(values) == 2**bits and values[0] == -1 and values[-1] == 1
    assert (values == 0).sum() == 1 and bool((values[1:] > values[:-1]).all())
    assert (values > 0).sum() == 2 ** (bits - 1) and (values < 0).sum() == 2 ** (bits - 1) - 1


def code_entropy(codes: torch.Tensor) -> float:
    """Bits of information per code: 4 for 16 codes used equally often."""
    p = torch.bincount(codes.flatten().long()).float() / codes.numel()
    p = p[p > 0]
    return -(p * p.log2()).sum().item()


def test_normal_float_spreads_normal_data_over_its_values():
    # Equal mass per value would carry 4 bits per code. Blocks of 64 normal numbers divided
    # by their absmax come close with NF4; evenly spaced int4 codes crowd the middle ones.
    x = torch.randn(2**14, 64, generator=torch.Generator().manual_seed(0))
    nf4 = codebook_quantize(x, normal_float_values(4), block_size=64)
    int4 = absmax_quantize(x, 4, block_size=64)
    assert code_entropy(nf4.codes) > 3.8 and code_entropy(int4.codes.long() + 7) < 3.6
    nf4_error = (dequantize(nf4) - x).pow(2).mean()
    assert nf4_error < 0.8 * (dequantize(int4) - x).pow(2).mean()


def test_ties_go_to_the_larger_value():
    values = torch.tensor([-1.0, 0.0, 0.5, 1.0])
    q = codebook_quantize(torch.tensor([0.25, -0.5, 0.75, 1.0]), values)
    assert q.codes.flatten().tolist() == [2, 1, 3, 3]


def test_double_quantization_of_the_block_constants():
    w = torch.randn(256, 256, generator=torch.Generator().manual_seed(0)) * 0.02
    single = nf4_quantize(w, block_size=64)
    double = nf4_quantize(w, block_size=64, double_quant=True)
    assert single.bits_per_value == 4 + 32 / 64
    # QLoRA: 8 / 64 + 32 / (64 * 256) = 0.127 bits per number for the constants, and here
    # one 4-byte mean over the whole tensor
    assert math.isclose(double.bits_per_value, 4 + 8 / 64 + 32 / (64 * 256) + 32 / w.numel())
    assert torch.equal(double.codes, single.codes)
    constants = scale_of(double)
    assert (constants - single.scale).abs().max() <= single.scale.abs().max() / 127
    assert torch.equal(
        dequantize(double), double.values[double.codes.long()].mul(constants).view(256, 256)
    )
    with pytest.raises(ValueError, match="already quantized"):
        double_quantize(double)
    with pytest.raises(ValueError, match="does not divide"):
        double_quantize(nf4_quantize(torch.randn(64 * 300)), block_size=256)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (torch.tensor([-1.0, 0.0, 1.0]), "2, 4, ..., 256 values"),
        (torch.tensor([-1.0, 0.5, 0.0, 1.0]), "strictly increasing"),
        (torch.tensor([-2.0, 0.0, 0.5, 1.0]), r"lie in \[-1, 1\]"),
        (torch.tensor([0, 1]), "floating-point"),
    ],
)
def test_bad_codebooks(values, message):
    with pytest.raises(ValueError, match=message):
        codebook_quantize(torch.randn(8), values)


def test_bad_bits():
    with pytest.raises(ValueError, match="bits must be one of"):
        normal_float_values(1)
