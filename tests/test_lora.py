"""LoRA (llmcourse.peft.lora): the wrapped layer, choosing layers by name, merging."""

from __future__ import annotations

import pytest
import torch
from tiny_models import random_gpt
from torch import nn

from llmcourse.peft import (
    LoRALinear,
    apply_lora,
    count_parameters,
    lora_layers,
    matches,
    merge_lora,
    select_linear_layers,
    unmerge_lora,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def trained_lora(base: nn.Linear, r: int = 3, alpha: float = 6.0, seed: int = 0) -> LoRALinear:
    """A LoRA layer whose B is not zero, as after some training."""
    layer = LoRALinear(base, r, alpha)
    with torch.no_grad():
        layer.lora_B.copy_(
            torch.randn(layer.lora_B.shape, generator=torch.Generator().manual_seed(seed))
        )
    return layer


def test_forward_is_the_formula():
    torch.manual_seed(0)
    base = nn.Linear(7, 5)
    layer = trained_lora(base)
    x = torch.randn(2, 4, 7)
    expected = x @ base.weight.T + base.bias + (6.0 / 3) * x @ layer.lora_A.T @ layer.lora_B.T
    torch.testing.assert_close(layer(x), expected)
    assert layer.scaling == 2.0 and layer.lora_A.shape == (3, 7) and layer.lora_B.shape == (5, 3)


def test_a_new_layer_is_the_base_layer_and_only_a_and_b_train():
    torch.manual_seed(0)
    base = nn.Linear(7, 5)
    layer = LoRALinear(base, r=2)
    x = torch.randn(3, 7)
    assert torch.equal(layer(x), base(x))  # B = 0
    assert torch.all(layer.lora_B == 0) and layer.lora_A.abs().sum() > 0
    trainable = [name for name, p in layer.named_parameters() if p.requires_grad]
    assert trainable == ["lora_A", "lora_B"]
    assert count_parameters(layer, trainable=True) == 2 * (7 + 5)
    assert layer.scaling == 1.0  # alpha defaults to r


def test_merge_and_unmerge_keep_the_outputs():
    torch.manual_seed(0)
    base = nn.Linear(16, 8)
    layer = trained_lora(base, r=4, alpha=8.0)
    original = base.weight.detach().clone()
    x = torch.randn(5, 16)
    before = layer(x)
    layer.merge()
    torch.testing.assert_close(base.weight, original + 2.0 * layer.lora_B @ layer.lora_A)
    torch.testing.assert_close(layer(x), before)
    torch.testing.assert_close(layer(x), base(x))  # one matrix product now
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    layer.unmerge()
    torch.testing.assert_close(base.weight, original)
    torch.testing.assert_close(layer(x), before)
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()


def test_dropout_acts_on_the_low_rank_path_only_while_training():
    torch.manual_seed(0)
    base = nn.Linear(6, 6)
    layer = trained_lora(base, r=2, alpha=2.0)
    layer.dropout = nn.Dropout(0.5)
    x = torch.randn(50, 6)
    layer.eval()
    expected = base(x) + x @ layer.lora_A.T @ layer.lora_B.T
    torch.testing.assert_close(layer(x), expected)
    layer.train()
    assert not torch.allclose(layer(x), expected)
    assert LoRALinear(nn.Linear(2, 2), 1, dropout=0.1).dropout.p == 0.1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"r": 0}, "r must be an integer >= 1, got 0"),
        ({"r": -2}, "r must be an integer >= 1"),
        ({"r": 2.5}, "r must be an integer"),
        ({"r": 2, "alpha": 0.0}, "alpha must be a finite number > 0"),
        ({"r": 2, "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoRALinear(nn.Linear(4, 4), **kwargs)


def test_the_base_must_be_a_linear_layer():
    with pytest.raises(TypeError, match="linear layer"):
        LoRALinear(nn.ReLU(), 2)


def test_names_match_as_in_peft():
    name = "transformer.blocks.0.attn.w_q"
    assert matches(name, "w_q") and matches(name, "attn.w_q") and matches(name, name)
    assert (
        not matches(name, "q") and not matches(name, "blocks.0.attn") and not matches(name, "w_k")
    )


def test_apply_lora_to_a_gpt_by_name():
    model = random_gpt(vocab_size=20, block_size=8)
    idx = torch.randint(0, 20, (2, 8), generator=torch.Generator().manual_seed(0))
    before = model(idx)
    names = apply_lora(model, ["w_q", "attn.w_v"], r=2, alpha=4)
    assert names == [f"transformer.blocks.{i}.attn.w_{p}" for i in range(2) for p in "qv"]
    assert len(lora_layers(model)) == 4
    torch.testing.assert_close(model(idx), before)  # B = 0: the pretrained function
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{n}.lora_{m}" for n in names for m in "AB"}
    assert count_parameters(model, trainable=True) == 4 * 2 * (16 + 16)


def test_a_trained_gpt_merges_without_changing_its_outputs():
    model = random_gpt(vocab_size=20, block_size=8)
    apply_lora(model, ["w_q", "w_k", "w_v", "w_o", "up", "down"], r=3)
    with torch.no_grad():
        for layer in lora_layers(model):
            layer.lora_B.normal_(std=0.2)
    idx = torch.randint(0, 20, (3, 8), generator=torch.Generator().manual_seed(1))
    adapted = model(idx)
    assert merge_lora(model) == 12
    torch.testing.assert_close(model(idx), adapted, rtol=1e-4, atol=1e-5)
    assert unmerge_lora(model) == 12
    torch.testing.assert_close(model(idx), adapted, rtol=1e-4, atol=1e-5)


def test_a_name_that_matches_no_layer_is_an_error():
    model = random_gpt(vocab_size=20, block_size=8)
    with pytest.raises(ValueError, match=r"target 'w_x' matches no nn.Linear.*attn.w_q"):
        apply_lora(model, ["w_q", "w_x"], r=2)
    assert not lora_layers(model)  # nothing was changed
    with pytest.raises(ValueError, match="non-empty list"):
        select_linear_layers(model, "w_q")
    with pytest.raises(ValueError, match="r must be"):
        apply_lora(model, ["w_q"], r=0)
