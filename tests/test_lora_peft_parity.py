"""LoRA against Hugging Face ``peft`` (a test-only dependency): on the same plain module with
the same weights, the same outputs, the same gradients and the same merged weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from llmcourse.peft import apply_lora, lora_layers, merge_lora

pytestmark = pytest.mark.usefixtures("one_thread")

peft = pytest.importorskip("peft")


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(12, 20)
        self.down = nn.Linear(20, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.tanh(self.up(x)))


def pair(r: int, alpha: float, seed: int) -> tuple[nn.Module, nn.Module]:
    """The same module adapted by llmcourse and by peft, with equal, non-zero A and B."""
    torch.manual_seed(seed)
    plain = TwoLayers()
    ours = copy.deepcopy(plain)
    apply_lora(ours, ["up", "down"], r=r, alpha=alpha)
    config = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=["up", "down"], lora_dropout=0.0)
    theirs = peft.inject_adapter_in_model(config, copy.deepcopy(plain))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name in ("up", "down"):
            layer, reference = getattr(ours, name), getattr(theirs, name)
            layer.lora_A.copy_(torch.randn(layer.lora_A.shape, generator=g))
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g))
            reference.lora_A["default"].weight.copy_(layer.lora_A)
            reference.lora_B["default"].weight.copy_(layer.lora_B)
    return ours, theirs


@pytest.mark.parametrize(("r", "alpha"), [(1, 1.0), (4, 8.0), (8, 16.0), (3, 1.5)])
def test_outputs_and_gradients_equal_peft(r, alpha):
    ours, theirs = pair(r, alpha, seed=r)
    assert theirs.up.scaling["default"] == ours.up.scaling == alpha / r
    x = torch.randn(9, 12, generator=torch.Generator().manual_seed(0))
    out, reference = ours(x), theirs(x)
    torch.testing.assert_close(out, reference)
    out.square().sum().backward()
    reference.square().sum().backward()
    for name in ("up", "down"):
        torch.testing.assert_close(
            getattr(ours, name).lora_A.grad, getattr(theirs, name).lora_A["default"].weight.grad
        )
        torch.testing.assert_close(
            getattr(ours, name).lora_B.grad, getattr(theirs, name).lora_B["default"].weight.grad
        )


def test_the_same_parameters_are_trained():
    ours, theirs = pair(4, 8.0, seed=0)
    count = sum(p.numel() for p in ours.parameters() if p.requires_grad)
    assert count == sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    assert count == 4 * (12 + 20) + 4 * (20 + 6)


@pytest.mark.parametrize(("r", "alpha"), [(2, 4.0), (5, 10.0)])
def test_merged_weights_equal_peft(r, alpha):
    ours, theirs = pair(r, alpha, seed=10 + r)
    for name in ("up", "down"):
        torch.testing.assert_close(
            getattr(ours, name).delta_weight(), getattr(theirs, name).get_delta_weight("default")
        )
    x = torch.randn(4, 12, generator=torch.Generator().manual_seed(3))
    before = theirs(x)
    merge_lora(ours)
    for layer in (theirs.up, theirs.down):
        layer.merge()
    for name in ("up", "down"):
        torch.testing.assert_close(
            getattr(ours, name).base.weight, getattr(theirs, name).base_layer.weight
        )
    assert all(layer.merged for layer in lora_layers(ours))
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours(x), before)
