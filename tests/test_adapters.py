"""Bottleneck adapters (llmcourse.peft.adapters)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.models import gpt_parameter_counts
from llmcourse.modules import FeedForward, MultiHeadAttention, TransformerBlock
from llmcourse.peft import (
    AdaptedSublayer,
    BottleneckAdapter,
    adapter_parameter_count,
    add_adapters,
    count_parameters,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_an_adapter_is_residual_and_starts_as_the_identity():
    torch.manual_seed(0)
    adapter = BottleneckAdapter(8, 3)
    h = torch.randn(2, 5, 8)
    assert torch.equal(adapter(h), h)
    with torch.no_grad():
        adapter.up.weight.normal_()
    expected = h + adapter.up(torch.nn.functional.gelu(adapter.down(h)))
    torch.testing.assert_close(adapter(h), expected)
    relu = BottleneckAdapter(8, 3, activation="relu")
    with torch.no_grad():
        relu.up.weight.fill_(1.0)
    torch.testing.assert_close(relu(h), h + relu.up(torch.relu(relu.down(h))))


def test_adapters_go_after_attention_and_feed_forward_of_every_block():
    model = random_gpt(vocab_size=30, block_size=8, n_layers=3)
    idx = torch.randint(0, 30, (2, 8), generator=torch.Generator().manual_seed(0))
    before = model(idx)
    adapters = add_adapters(model, bottleneck=4)
    assert len(adapters) == 6
    for block in model.transformer.blocks:
        assert isinstance(block.attn, AdaptedSublayer) and isinstance(block.ffn, AdaptedSublayer)
        assert isinstance(block.attn.sublayer, MultiHeadAttention)
        assert isinstance(block.ffn.sublayer, FeedForward)
    torch.testing.assert_close(model(idx), before)  # every adapter starts as the identity
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".adapter." in n for n in trainable)


def test_an_adapter_changes_its_sublayer_output_before_the_residual_sum():
    model = random_gpt(vocab_size=30, block_size=8, n_layers=1)
    block: TransformerBlock = model.transformer.blocks[0]
    x = torch.randn(1, 8, 16)
    (adapter,) = add_adapters(model, bottleneck=2, sublayers=["ffn"])
    with torch.no_grad():
        adapter.up.weight.normal_()
    ffn = block.ffn.sublayer
    h = block._residual(x, block.attn_norm, lambda n: block.attn(n))
    expected = h + adapter(ffn(block.ffn_norm(h)))
    torch.testing.assert_close(block(x), expected)


def test_the_seed_count_of_adapter_parameters():
    # 2L adapters, each two matrices d x r and r x d with their biases: 2L (2 d r + d + r)
    for d, r, layers in [(16, 4, 2), (128, 16, 4), (64, 1, 3)]:
        model = random_gpt(vocab_size=30, block_size=8, d_model=d, n_heads=2, n_layers=layers)
        add_adapters(model, bottleneck=r)
        assert count_parameters(model, trainable=True) == adapter_parameter_count(d, r, layers)
        assert adapter_parameter_count(d, r, layers) == 2 * layers * (2 * d * r + d + r)
        total = gpt_parameter_counts(model.config)["total"]
        assert count_parameters(model) == total + adapter_parameter_count(d, r, layers)


def test_attention_arguments_pass_through_an_adapted_attention():
    model = random_gpt(vocab_size=30, block_size=8)
    idx = torch.randint(0, 30, (1, 8), generator=torch.Generator().manual_seed(2))
    add_adapters(model, bottleneck=2)
    full = model(idx)
    cache = model.new_cache()
    model(idx[:, :5], cache=cache)
    torch.testing.assert_close(model(idx[:, 5:], cache=cache), full[:, 5:], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bottleneck": 0}, "bottleneck must be an integer >= 1"),
        ({"bottleneck": 2, "sublayers": ["mlp"]}, "sublayer must be one of"),
        ({"bottleneck": 2, "sublayers": []}, "non-empty"),
        ({"bottleneck": 2, "activation": "tanh"}, "activation must be one of"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        add_adapters(random_gpt(vocab_size=10, block_size=4), **kwargs)


def test_a_model_without_blocks_is_an_error():
    with pytest.raises(ValueError, match="no TransformerBlock"):
        add_adapters(torch.nn.Linear(3, 3), bottleneck=2)
