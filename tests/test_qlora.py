"""QLoRA in miniature (llmcourse.peft.qlora): LoRA on a frozen NF4 base."""

from __future__ import annotations

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.compression import QuantizedLinear, dequantize, nf4_quantize
from llmcourse.peft import LoRALinear, apply_qlora, count_parameters, lora_layers

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_base_is_stored_in_nf4_and_only_lora_trains():
    model = random_gpt(vocab_size=30, block_size=8, d_model=64, n_heads=2)
    weights = {n: m.weight.detach().clone() for n, m in model.named_modules() if n.endswith("w_q")}
    names = apply_qlora(model, r=4, alpha=8)
    assert len(names) == 12  # six linear layers per block
    for name in names:
        layer = model.get_submodule(name)
        assert isinstance(layer, LoRALinear) and isinstance(layer.base, QuantizedLinear)
        assert not list(layer.base.parameters())  # the base has buffers only: nothing to train
    for name, weight in weights.items():
        stored = model.get_submodule(name).base
        torch.testing.assert_close(
            stored.dequantized_weight(), dequantize(nf4_quantize(weight, double_quant=True))
        )
        assert (
            stored.weight_codes.dtype == torch.uint8 and stored.weight_codes.numel() == 64 * 64 // 2
        )
    lora = sum(layer.lora_A.numel() + layer.lora_B.numel() for layer in lora_layers(model))
    assert count_parameters(model, trainable=True) == lora


def test_the_gradient_reaches_lora_through_the_dequantized_base():
    model = random_gpt(vocab_size=30, block_size=8, d_model=64, n_heads=2)
    apply_qlora(model, targets=["w_q", "ffn.down"], r=2)
    with torch.no_grad():
        for layer in lora_layers(model):
            layer.lora_B.normal_()
    idx = torch.randint(0, 30, (2, 8), generator=torch.Generator().manual_seed(0))
    codes = [layer.base.weight_codes.clone() for layer in lora_layers(model)]
    model(idx).logsumexp(-1).sum().backward()
    for layer, before in zip(lora_layers(model), codes, strict=True):
        assert layer.lora_A.grad.abs().sum() > 0 and layer.lora_B.grad.abs().sum() > 0
        assert torch.equal(layer.base.weight_codes, before)


def test_a_quantized_base_cannot_be_merged():
    model = random_gpt(vocab_size=30, block_size=8, d_model=64, n_heads=2)
    apply_qlora(model, targets=["w_q"], r=2)
    with pytest.raises(TypeError, match="only an nn.Linear base can be merged"):
        lora_layers(model)[0].merge()


def test_a_name_that_matches_no_layer_is_an_error():
    with pytest.raises(ValueError, match="matches no nn.Linear"):
        apply_qlora(random_gpt(vocab_size=30, block_size=8, d_model=64, n_heads=2), ["w_z"])
