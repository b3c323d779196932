"""IA3 (llmcourse.peft.ia3): trained vectors that rescale keys, values and FFN activations."""

from __future__ import annotations

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.peft import ScaleInput, ScaleOutput, apply_ia3, count_parameters

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_scaled_layers():
    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    out, into = ScaleOutput(linear), ScaleInput(linear)
    assert torch.equal(out(x), linear(x)) and torch.equal(into(x), linear(x))  # start at 1
    with torch.no_grad():
        out.scale.copy_(torch.tensor([2.0, 0.0, -1.0]))
        into.scale.copy_(torch.tensor([1.0, 0.5, 0.0, 3.0]))
    torch.testing.assert_close(out(x), linear(x) * torch.tensor([2.0, 0.0, -1.0]))
    torch.testing.assert_close(into(x), linear(x * torch.tensor([1.0, 0.5, 0.0, 3.0])))


def test_ia3_on_a_gpt_trains_two_kv_vectors_and_one_ffn_vector_per_layer():
    model = random_gpt(vocab_size=30, block_size=8, n_kv_heads=1)  # keys of width 8
    idx = torch.randint(0, 30, (2, 8), generator=torch.Generator().manual_seed(0))
    before = model(idx)
    names = apply_ia3(model)
    assert len(names) == 6
    torch.testing.assert_close(model(idx), before)
    # per layer: l_k and l_v (8 each, one kv head of 8) and l_ff (4 * 16 = 64)
    assert count_parameters(model, trainable=True) == 2 * (8 + 8 + 64)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(n.endswith(".scale") for n in trainable)


def test_bad_names():
    with pytest.raises(ValueError, match="matches no nn.Linear"):
        apply_ia3(random_gpt(vocab_size=10, block_size=4), scale_outputs=["w_x"])
    with pytest.raises(ValueError, match="scaled twice"):
        apply_ia3(random_gpt(vocab_size=10, block_size=4), ["ffn.down"], ["down"])
    with pytest.raises(ValueError, match="at least one"):
        apply_ia3(random_gpt(vocab_size=10, block_size=4), [], [])
