"""Parity of llmcourse.modules.attention with PyTorch's own attention, with copied weights.

``scaled_dot_product_attention`` is compared with ``F.scaled_dot_product_attention``
(no mask, boolean masks, ``is_causal``), and ``MultiHeadAttention`` with
``nn.MultiheadAttention`` (self- and cross-attention, attention and key-padding masks),
on outputs, per-head weights and gradients, in float64 so the tolerances can be tight.

Two conventions differ: a boolean mask means "may attend" in ours and in
``F.scaled_dot_product_attention``, but "may *not* attend" in ``nn.MultiheadAttention``
(``attn_mask`` and ``key_padding_mask``); and torch stacks the query, key and value
projections into one ``in_proj_weight``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.modules import MultiHeadAttention, causal_mask, scaled_dot_product_attention

DTYPE = torch.float64


def randn(*shape, generator):
    return torch.randn(*shape, generator=generator, dtype=DTYPE)


def random_mask(shape, generator):
    mask = torch.rand(shape, generator=generator) < 0.6
    mask[..., 0] = True  # every query keeps at least one key
    return mask


@pytest.mark.parametrize("mask_kind", ["none", "causal", "random", "padding", "per-head"])
def test_sdpa_matches_torch(mask_kind):
    g = torch.Generator().manual_seed(0)
    batch, heads, l_q, l_k, d_k, d_v = 2, 3, 5, 5, 4, 6
    q = randn(batch, heads, l_q, d_k, generator=g).requires_grad_()
    k = randn(batch, heads, l_k, d_k, generator=g).requires_grad_()
    v = randn(batch, heads, l_k, d_v, generator=g).requires_grad_()
    masks = {
        "none": None,
        "causal": causal_mask(l_q),
        "random": random_mask((l_q, l_k), g),
        "padding": torch.tensor([[True] * 5, [True] * 3 + [False] * 2])[:, None, None, :],
        "per-head": random_mask((batch, heads, l_q, l_k), g),
    }
    mask = masks[mask_kind]
    ours, weights = scaled_dot_product_attention(q, k, v, mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, theirs)
    w = randn(*ours.shape, generator=g)
    grads_ours = torch.autograd.grad((ours * w).sum(), (q, k, v))
    grads_theirs = torch.autograd.grad((theirs * w).sum(), (q, k, v))
    for a, b in zip(grads_ours, grads_theirs, strict=True):
        torch.testing.assert_close(a, b)
    if mask is not None:
        assert (weights[~mask.expand_as(weights)] == 0).all()


def test_sdpa_causal_mask_matches_is_causal():
    g = torch.Generator().manual_seed(1)
    q, k, v = (randn(2, 7, 8, generator=g) for _ in range(3))
    ours, _ = scaled_dot_product_attention(q, k, v, causal_mask(7))
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_sdpa_cross_lengths_and_unbatched():
    g = torch.Generator().manual_seed(2)
    q, k, v = randn(3, 5, generator=g), randn(9, 5, generator=g), randn(9, 2, generator=g)
    mask = random_mask((3, 9), g)
    ours, _ = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def load_torch_attention(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    """Copy ``nn.MultiheadAttention``'s weights into ours (in_proj = [W_q; W_k; W_v])."""
    with torch.no_grad():
        weights = theirs.in_proj_weight.chunk(3)
        biases = theirs.in_proj_bias.chunk(3) if theirs.in_proj_bias is not None else [None] * 3
        for linear, weight, bias in zip(
            (ours.w_q, ours.w_k, ours.w_v), weights, biases, strict=True
        ):
            linear.weight.copy_(weight)
            if bias is not None:
                linear.bias.copy_(bias)
        ours.w_o.weight.copy_(theirs.out_proj.weight)
        if theirs.out_proj.bias is not None:
            ours.w_o.bias.copy_(theirs.out_proj.bias)


def make_pair(d_model, n_heads, bias, seed=0, record_weights=True):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(d_model, n_heads, bias=bias, batch_first=True).to(DTYPE)
    with torch.no_grad():  # torch starts the biases at 0: make them matter
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = MultiHeadAttention(d_model, n_heads, bias=bias, record_weights=record_weights)
    ours = ours.to(DTYPE)
    load_torch_attention(ours, theirs)
    return ours, theirs


def assert_same_grads(ours, theirs):
    weights = theirs.in_proj_weight.grad.chunk(3)
    for linear, grad in zip((ours.w_q, ours.w_k, ours.w_v), weights, strict=True):
        torch.testing.assert_close(linear.weight.grad, grad)
    torch.testing.assert_close(ours.w_o.weight.grad, theirs.out_proj.weight.grad)
    if theirs.in_proj_bias is not None:
        biases = theirs.in_proj_bias.grad.chunk(3)
        for linear, grad in zip((ours.w_q, ours.w_k, ours.w_v), biases, strict=True):
            torch.testing.assert_close(linear.bias.grad, grad)
        torch.testing.assert_close(ours.w_o.bias.grad, theirs.out_proj.bias.grad)


@pytest.mark.parametrize("record_weights", [True, False], ids=["written-out", "fused"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_matches_nn_multihead_attention(bias, causal, record_weights):
    ours, theirs = make_pair(12, 3, bias, record_weights=record_weights)
    g = torch.Generator().manual_seed(3)
    x = randn(2, 6, 12, generator=g).requires_grad_()
    mask = causal_mask(6) if causal else None
    out = ours(x, mask=mask)
    expected, expected_weights = theirs(
        x, x, x, attn_mask=None if mask is None else ~mask, average_attn_weights=False
    )
    torch.testing.assert_close(out, expected)
    if record_weights:
        torch.testing.assert_close(ours.last_weights, expected_weights)
    else:
        assert ours.last_weights is None  # the fused path keeps no (L_q, L_k) weights
    w = randn(*out.shape, generator=g)
    (grad_x,) = torch.autograd.grad((out * w).sum(), x, retain_graph=True)
    (expected_grad_x,) = torch.autograd.grad((expected * w).sum(), x, retain_graph=True)
    torch.testing.assert_close(grad_x, expected_grad_x)
    (out * w).sum().backward()
    (expected * w).sum().backward()
    assert_same_grads(ours, theirs)


@pytest.mark.parametrize("record_weights", [True, False], ids=["written-out", "fused"])
def test_cross_attention_with_masks_matches_nn_multihead_attention(record_weights):
    ours, theirs = make_pair(8, 2, bias=True, seed=1, record_weights=record_weights)
    g = torch.Generator().manual_seed(4)
    x, context = randn(3, 4, 8, generator=g), randn(3, 7, 8, generator=g)
    lengths = torch.tensor([7, 5, 2])
    padding = torch.arange(7) < lengths[:, None]  # (batch, L_k), True at real keys
    attn_mask = random_mask((4, 7), g)
    mask = padding[:, None, None, :] & attn_mask  # ours: one mask, broadcast over heads
    out = ours(x, context, mask)
    expected, expected_weights = theirs(
        x,
        context,
        context,
        key_padding_mask=~padding,
        attn_mask=~attn_mask,
        average_attn_weights=False,
    )
    torch.testing.assert_close(out, expected)
    if record_weights:
        torch.testing.assert_close(ours.last_weights, expected_weights)
    (out.sum() + (out**2).sum()).backward()
    (expected.sum() + (expected**2).sum()).backward()
    assert_same_grads(ours, theirs)
