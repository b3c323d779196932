"""Integer quantization (llmcourse.compression.quantize): the formulas, the groups, the
storage and the errors."""

from __future__ import annotations

import pytest
import torch

from llmcourse.compression import (
    absmax_quantize,
    dequantize,
    fake_quantize,
    group,
    pack_codes,
    quantize,
    ungroup,
    unpack_codes,
    zeropoint_quantize,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_absmax_int8_by_hand():
    x = torch.tensor([10.0, -3.0, 5.0, 4.0, 0.04])
    q = absmax_quantize(x, bits=8)
    # c = 10, x * 127 / 10 = 127, -38.1, 63.5, 50.8, 0.508
    assert q.codes.flatten().tolist() == [127, -38, 64, 51, 1]
    torch.testing.assert_close(q.scale, torch.tensor([[10.0 / 127]]))
    torch.testing.assert_close(dequantize(q), q.codes.flatten().float() * 10.0 / 127)
    assert (dequantize(q) - x).abs().max() <= 10.0 / 127 / 2


def test_zeropoint_by_hand():
    x = torch.tensor([-1.0, 0.0, 2.0, 0.5])
    q = zeropoint_quantize(x, bits=2)  # range [-1, 2] in 3 steps of 1.0, zero point 1
    assert q.codes.flatten().tolist() == [0, 1, 3, 2]  # 0.5 / 1.0 + 1 = 1.5 -> 2 (even)
    assert q.zero_point.item() == 1 and q.scale.item() == 1.0
    assert dequantize(q).tolist() == [-1.0, 0.0, 2.0, 1.0]
    positive = zeropoint_quantize(torch.tensor([1.0, 3.0]), bits=8)  # the range widens to 0
    assert positive.zero_point.item() == 0 and positive.codes.flatten().tolist() == [85, 255]


@pytest.mark.parametrize("scheme", ["absmax", "zeropoint"])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_the_error_is_at_most_half_a_step(scheme, bits):
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(bits))
    q = quantize(x, scheme, bits, axis=0)
    step = q.scale  # (64, 1): one step per row
    error = (dequantize(q) - x).abs().view(64, 32)
    assert bool((error <= step / 2 * (1 + 1e-5)).all())
    assert q.codes.shape == (64, 32)


def test_more_bits_less_error_and_zeros_stay_zero():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    x[::7] = 0.0
    errors = [(fake_quantize(x, "absmax", b) - x).pow(2).mean().item() for b in (2, 3, 4, 8)]
    assert errors == sorted(errors, reverse=True)
    for scheme in ("absmax", "zeropoint"):
        assert bool((fake_quantize(x, scheme, 4)[::7] == 0).all())
    zeros = torch.zeros(2, 8)
    for scheme in ("absmax", "zeropoint"):
        assert torch.equal(fake_quantize(zeros, scheme, 8, axis=0), zeros)


def test_groups_per_tensor_channel_and_block():
    x = torch.arange(24.0).view(2, 3, 4)
    assert group(x)[0].shape == (1, 24)
    rows, layout = group(x, axis=1)
    assert rows.shape == (3, 8) and torch.equal(rows[1], x[:, 1].flatten())
    assert layout.granularity == "channel" and torch.equal(ungroup(rows, layout), x)
    blocks, layout = group(x, block_size=6)
    assert blocks.shape == (4, 6) and layout.granularity == "block"
    assert torch.equal(ungroup(blocks, layout), x)
    assert torch.equal(ungroup(*group(x, axis=-1)), x)


def test_a_block_holds_an_outlier_to_itself():
    x = torch.randn(256, generator=torch.Generator().manual_seed(1)) * 0.1
    x[3] = 20.0
    # one constant for all: the step is 20 / 7, and every other value rounds to 0
    assert bool((fake_quantize(x, "absmax", 4)[x.abs() < 1] == 0).all())
    # blocks of 64: only the first block has the large step
    blocks = (fake_quantize(x, "absmax", 4, block_size=64) - x).abs()
    assert blocks[64:].max() <= x[64:].abs().max() / 7 / 2 * (1 + 1e-6)
    assert (fake_quantize(x, "absmax", 4, block_size=64)[64:] != 0).float().mean() > 0.5


def test_storage():
    x = torch.randn(128, 64)
    assert absmax_quantize(x, 8).nbytes == 128 * 64 + 4
    assert absmax_quantize(x, 4, block_size=64).nbytes == 128 * 64 // 2 + 128 * 4
    assert absmax_quantize(x, 4, block_size=64).bits_per_value == 4.5
    assert zeropoint_quantize(x, 3, axis=0).nbytes == 128 * 64 * 3 // 8 + 128 * 4 + 48


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_pack_and_unpack(bits):
    codes = torch.randint(0, 2**bits, (48,), generator=torch.Generator().manual_seed(bits))
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == 48 * bits // 8
    assert torch.equal(unpack_codes(packed, bits), codes.to(torch.uint8))
    assert pack_codes(torch.tensor([1, 2]), 4).tolist() == [1 + 2 * 16]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: absmax_quantize(x, bits=9), r"bits must be one of \(2, 3, 4, 5, 6, 7, 8\)"),
        (lambda x: zeropoint_quantize(x, bits=1), "bits must be one of"),
        (
            lambda x: absmax_quantize(x, block_size=7),
            "block_size 7 does not divide the tensor's 24",
        ),
        (lambda x: absmax_quantize(x, block_size=0), "block_size must be an integer >= 1"),
        (lambda x: absmax_quantize(x, axis=2), r"axis must be an integer in \[-2, 1\]"),
        (lambda x: absmax_quantize(x, axis=0, block_size=4), "not both"),
        (lambda x: quantize(x, "nf4"), "scheme must be one of"),
        (lambda x: absmax_quantize(x.long()), "floating-point tensor"),
        (lambda x: pack_codes(torch.zeros(3), 4), "do not fill whole bytes"),
    ],
)
def test_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(torch.randn(4, 6))
