"""Quantized weights in a model (llmcourse.compression.quantized_linear)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.compression import (
    QuantizedLinear,
    dequantize,
    fake_quantize_weights,
    matrix_parameters,
    quantize_linear_layers,
    quantize_weight,
    quantized_nbytes,
)
from llmcourse.peft import linear_layer_names

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("scheme", "bits", "block_size", "double_quant"),
    [
        ("normalfloat", 4, 64, True),
        ("normalfloat", 3, 64, False),
        ("absmax", 8, None, False),
        ("absmax", 4, 32, True),
        ("zeropoint", 4, 64, False),
        ("zeropoint", 3, None, False),
    ],
)
def test_a_quantized_layer_computes_with_its_dequantized_weight(
    scheme, bits, block_size, double_quant
):
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    layer = QuantizedLinear.from_linear(linear, scheme, bits, block_size, double_quant)
    q = quantize_weight(linear.weight.detach(), scheme, bits, block_size, double_quant)
    x = torch.randn(3, 5, 64)
    torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, dequantize(q), linear.bias))
    assert layer.nbytes == q.nbytes and not list(layer.parameters())
    stored = sum(b.numel() * b.element_size() for b in layer.buffers())
    assert stored < linear.weight.numel() * 4 / 2  # at most a byte per code, not four
    assert layer.quantized().codes.dtype == q.codes.dtype
    assert torch.equal(layer.quantized().codes, q.codes)


def test_four_bit_codes_are_packed_two_per_byte():
    linear = torch.nn.Linear(32, 16)
    layer = QuantizedLinear.from_linear(linear, "absmax", 4, 32)
    assert layer.weight_codes.dtype == torch.uint8 and layer.weight_codes.numel() == 32 * 16 // 2


def test_w4a16_computes_in_bfloat16_and_returns_the_input_dtype():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    float_layer = QuantizedLinear.from_linear(linear)
    bf16_layer = QuantizedLinear.from_linear(linear, compute_dtype=torch.bfloat16)
    x = torch.randn(4, 64)
    out = bf16_layer(x)
    assert out.dtype == torch.float32
    expected = torch.nn.functional.linear(
        x.bfloat16(), float_layer.dequantized_weight().bfloat16(), linear.bias.bfloat16()
    ).float()
    assert torch.equal(out, expected)
    assert not torch.equal(out, float_layer(x))
    torch.testing.assert_close(out, float_layer(x), rtol=0.05, atol=0.05)


def test_quantize_the_linear_layers_of_a_gpt():
    model = random_gpt(vocab_size=30, block_size=8, d_model=64, n_heads=2)
    idx = torch.randint(0, 30, (2, 8), generator=torch.Generator().manual_seed(0))
    names = [n for n in linear_layer_names(model) if "blocks" in n]
    reference = random_gpt(vocab_size=30, block_size=8, d_model=64, n_heads=2)
    quantizer = lambda w: quantize_weight(w, "absmax", 8, None)  # noqa: E731
    fake_quantize_weights(reference, quantizer, [f"{n}.weight" for n in names])
    layers = quantize_linear_layers(model, names, "absmax", 8, None)
    assert set(layers) == set(names)
    torch.testing.assert_close(model(idx), reference(idx))
    with pytest.raises(ValueError, match="not an nn.Linear"):
        quantize_linear_layers(model, names[:1])


def test_fake_quantized_weights_and_their_storage():
    model = random_gpt(vocab_size=32, block_size=8, d_model=64, n_heads=2)
    floats = sum(p.numel() * 4 for p in model.parameters())
    matrices = matrix_parameters(model)
    assert "embed.weight" in matrices and all(p.ndim == 2 for p in matrices.values())
    before = {n: p.detach().clone() for n, p in matrices.items()}
    quantized = fake_quantize_weights(model, lambda w: quantize_weight(w, "absmax", 8, 64))
    for name, q in quantized.items():
        assert torch.equal(matrices[name], dequantize(q))
        assert (matrices[name] - before[name]).abs().max() <= before[name].abs().max() / 127
    others = floats - sum(p.numel() * 4 for p in matrices.values())
    assert quantized_nbytes(model, quantized) == others + sum(q.nbytes for q in quantized.values())
    assert quantized_nbytes(model, quantized) < 0.3 * floats + others
    with pytest.raises(ValueError, match="no parameter"):
        fake_quantize_weights(model, lambda w: quantize_weight(w), ["nope.weight"])


def test_bad_arguments():
    linear = torch.nn.Linear(8, 8)
    with pytest.raises(ValueError, match="scheme must be one of"):
        quantize_weight(linear.weight, "nf5")
    with pytest.raises(ValueError, match="double quantization applies"):
        quantize_weight(linear.weight, "zeropoint", 4, 64, double_quant=True)
    with pytest.raises(ValueError, match="compute_dtype must be one of"):
        QuantizedLinear.from_linear(linear, compute_dtype=torch.int8)
