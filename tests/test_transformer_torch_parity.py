"""Parity of llmcourse.modules.transformer's blocks with ``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer``, with copied weights.

torch's layers implement the original Transformer's blocks: post-norm by default,
pre-norm with ``norm_first=True``; ReLU or GELU feed-forward networks; the decoder
layer has self-attention, cross-attention ("multihead_attn") and the feed-forward
network, each with its norm. We copy torch's weights into a ``TransformerBlock``
and compare outputs and gradients in float64 (dropout 0, so train mode is exact).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llmcourse.modules import MultiHeadAttention, TransformerBlock, TransformerConfig, causal_mask

DTYPE = torch.float64
D_MODEL, HEADS, D_FF = 12, 3, 20


def load_attention(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    q, k, v = theirs.in_proj_weight.chunk(3)
    bq, bk, bv = theirs.in_proj_bias.chunk(3)
    for linear, weight, bias in ((ours.w_q, q, bq), (ours.w_k, k, bk), (ours.w_v, v, bv)):
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    ours.w_o.weight.copy_(theirs.out_proj.weight)
    ours.w_o.bias.copy_(theirs.out_proj.bias)


def load_block(ours: TransformerBlock, theirs: nn.Module) -> None:
    """Copy an ``nn.TransformerEncoderLayer`` or ``nn.TransformerDecoderLayer``."""
    with torch.no_grad():
        load_attention(ours.attn, theirs.self_attn)
        ours.attn_norm.load_state_dict(theirs.norm1.state_dict())
        if isinstance(theirs, nn.TransformerDecoderLayer):
            load_attention(ours.cross_attn, theirs.multihead_attn)
            ours.cross_norm.load_state_dict(theirs.norm2.state_dict())
            ours.ffn_norm.load_state_dict(theirs.norm3.state_dict())
        else:
            ours.ffn_norm.load_state_dict(theirs.norm2.state_dict())
        ours.ffn.up.load_state_dict(theirs.linear1.state_dict())
        ours.ffn.down.load_state_dict(theirs.linear2.state_dict())


def make_pair(kind: str, pre_norm: bool, activation: str):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer if kind == "encoder" else nn.TransformerDecoderLayer
    theirs = layer(
        D_MODEL,
        HEADS,
        dim_feedforward=D_FF,
        dropout=0.0,
        activation=activation,
        batch_first=True,
        norm_first=pre_norm,
    ).to(DTYPE)
    with torch.no_grad():  # torch starts biases at 0 and norms at 1: make them matter
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))
    config = TransformerConfig(
        vocab_size=2,
        block_size=16,
        d_model=D_MODEL,
        n_heads=HEADS,
        n_layers=1,
        d_ff=D_FF,
        pre_norm=pre_norm,
        activation=activation,
    )
    ours = TransformerBlock(config, cross_attention=kind == "decoder").to(DTYPE)
    load_block(ours, theirs)
    return ours, theirs


def assert_same_grads(ours: TransformerBlock, theirs: nn.Module) -> None:
    torch.testing.assert_close(ours.ffn.up.weight.grad, theirs.linear1.weight.grad)
    torch.testing.assert_close(ours.ffn.down.bias.grad, theirs.linear2.bias.grad)
    torch.testing.assert_close(ours.attn_norm.weight.grad, theirs.norm1.weight.grad)
    q_grad = theirs.self_attn.in_proj_weight.grad.chunk(3)[0]
    torch.testing.assert_close(ours.attn.w_q.weight.grad, q_grad)
    torch.testing.assert_close(ours.attn.w_o.weight.grad, theirs.self_attn.out_proj.weight.grad)


@pytest.mark.parametrize("pre_norm", [False, True], ids=["post-norm", "pre-norm"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("mask_kind", ["none", "causal", "padding"])
def test_encoder_block_matches_torch(pre_norm, activation, mask_kind):
    ours, theirs = make_pair("encoder", pre_norm, activation)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 7, D_MODEL, generator=g, dtype=DTYPE).requires_grad_()
    padding = torch.arange(7) < torch.tensor([[7], [5], [2]])  # True at real tokens
    if mask_kind == "causal":
        out = ours(x, causal_mask(7))
        expected = theirs(x, src_mask=~causal_mask(7))  # torch: True = may not attend
    elif mask_kind == "padding":
        out = ours(x, padding[:, None, None, :])
        expected = theirs(x, src_key_padding_mask=~padding)
    else:
        out, expected = ours(x), theirs(x)
    torch.testing.assert_close(out, expected)
    w = torch.randn(out.shape, generator=g, dtype=DTYPE)
    (grad_ours,) = torch.autograd.grad((out * w).sum(), x, retain_graph=True)
    (grad_theirs,) = torch.autograd.grad((expected * w).sum(), x, retain_graph=True)
    torch.testing.assert_close(grad_ours, grad_theirs)
    (out * w).sum().backward()
    (expected * w).sum().backward()
    assert_same_grads(ours, theirs)


@pytest.mark.parametrize("pre_norm", [False, True], ids=["post-norm", "pre-norm"])
def test_decoder_block_with_cross_attention_matches_torch(pre_norm):
    ours, theirs = make_pair("decoder", pre_norm, "relu")
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, D_MODEL, generator=g, dtype=DTYPE).requires_grad_()
    memory = torch.randn(2, 8, D_MODEL, generator=g, dtype=DTYPE).requires_grad_()
    source = torch.arange(8) < torch.tensor([[8], [3]])
    out = ours(x, causal_mask(5), context=memory, context_mask=source[:, None, None, :])
    expected = theirs(
        x, memory, tgt_mask=~causal_mask(5), memory_key_padding_mask=~source, tgt_is_causal=True
    )
    torch.testing.assert_close(out, expected)
    w = torch.randn(out.shape, generator=g, dtype=DTYPE)
    grads_ours = torch.autograd.grad((out * w).sum(), (x, memory), retain_graph=True)
    grads_theirs = torch.autograd.grad((expected * w).sum(), (x, memory), retain_graph=True)
    for a, b in zip(grads_ours, grads_theirs, strict=True):
        torch.testing.assert_close(a, b)
    (out * w).sum().backward()
    (expected * w).sum().backward()
    assert_same_grads(ours, theirs)
    q_grad = theirs.multihead_attn.in_proj_weight.grad.chunk(3)[0]
    torch.testing.assert_close(ours.cross_attn.w_q.weight.grad, q_grad)
    torch.testing.assert_close(ours.cross_norm.weight.grad, theirs.norm2.weight.grad)
