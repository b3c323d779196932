"""Unit tests of llmcourse.modules.attention: masks, scaled dot-product and multi-head attention."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.modules import (
    MultiHeadAttention,
    causal_mask,
    fused_attention,
    merge_heads,
    record_attention,
    repeat_kv,
    scaled_dot_product_attention,
    split_heads,
)


def test_causal_mask_is_lower_triangular():
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]).bool()
    assert torch.equal(causal_mask(4), expected)
    assert causal_mask(1).tolist() == [[True]]


@pytest.mark.parametrize("n", [0, -1, 2.0, True, None])
def test_causal_mask_rejects_bad_sizes(n):
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        causal_mask(n)


def test_attention_by_hand():
    # Two keys of d_k = 4; the query matches the first key: scores 2/sqrt(4) = 1 and 0.
    q = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    k = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    v = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    output, weights = scaled_dot_product_attention(q, k, v)
    p = math.e / (math.e + 1)
    torch.testing.assert_close(weights, torch.tensor([[p, 1 - p]]))
    torch.testing.assert_close(output, torch.tensor([[10 * p, 10 * (1 - p)]]))


def test_identical_keys_give_the_average_of_the_values():
    k = torch.ones(5, 3)
    v = torch.arange(10.0).reshape(5, 2)
    output, weights = scaled_dot_product_attention(torch.randn(4, 3), k, v)
    torch.testing.assert_close(weights, torch.full((4, 5), 0.2))
    torch.testing.assert_close(output, v.mean(0).expand(4, 2))


def test_scores_are_divided_by_sqrt_dk():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(3, 16, generator=g), torch.randn(6, 16, generator=g)
    _, weights = scaled_dot_product_attention(q, k, torch.randn(6, 2, generator=g))
    torch.testing.assert_close(weights, torch.softmax(q @ k.T / 4.0, dim=-1))


def test_a_causal_mask_hides_the_future():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 6, 4, generator=g) for _ in range(3))
    output, weights = scaled_dot_product_attention(q, k, v, causal_mask(6))
    assert (weights.triu(diagonal=1) == 0).all()
    # changing the keys and values of the last position changes only the last output
    k2, v2 = k.clone(), v.clone()
    k2[:, -1], v2[:, -1] = 5.0, -5.0
    output2, _ = scaled_dot_product_attention(q, k2, v2, causal_mask(6))
    torch.testing.assert_close(output2[:, :-1], output[:, :-1])
    assert not torch.allclose(output2[:, -1], output[:, -1])
    # the first query sees only the first key: its output is the first value
    torch.testing.assert_close(output[:, 0], v[:, 0])


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3),
    l_q=st.integers(1, 6),
    l_k=st.integers(1, 6),
    d_k=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
)
def test_rows_sum_to_one_and_respect_the_mask(batch, l_q, l_k, d_k, seed):
    g = torch.Generator().manual_seed(seed)
    q = 3 * torch.randn(batch, l_q, d_k, generator=g, dtype=torch.float64)
    k = 3 * torch.randn(batch, l_k, d_k, generator=g, dtype=torch.float64)
    v = torch.randn(batch, l_k, 2, generator=g, dtype=torch.float64)
    mask = torch.rand(batch, l_q, l_k, generator=g) < 0.5
    mask[..., int(torch.randint(l_k, (1,), generator=g))] = True  # each row keeps a key
    output, weights = scaled_dot_product_attention(q, k, v, mask)
    assert output.shape == (batch, l_q, 2) and weights.shape == (batch, l_q, l_k)
    torch.testing.assert_close(weights.sum(-1), torch.ones(batch, l_q, dtype=torch.float64))
    assert (weights[~mask] == 0).all()
    assert (weights >= 0).all()
    # the output is a convex combination of the values: inside their range
    assert (output <= v.max(dim=1, keepdim=True).values + 1e-12).all()
    assert (output >= v.min(dim=1, keepdim=True).values - 1e-12).all()


def test_leading_dimensions_and_masks_broadcast():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 3, 5, 4, generator=g)  # (batch, heads, L_q, d_k)
    k = torch.randn(2, 1, 7, 4, generator=g)  # one key set shared by the heads
    v = torch.randn(2, 1, 7, 6, generator=g)
    padding = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])[:, None, None, :]
    output, weights = scaled_dot_product_attention(q, k, v, padding)
    assert output.shape == (2, 3, 5, 6) and weights.shape == (2, 3, 5, 7)
    assert (weights[1, ..., 4:] == 0).all()
    for h in range(3):
        expected, _ = scaled_dot_product_attention(q[1, h], k[1, 0, :4], v[1, 0, :4])
        torch.testing.assert_close(output[1, h], expected)


def test_attention_errors():
    q, k, v = torch.zeros(2, 3, 4), torch.zeros(2, 5, 4), torch.zeros(2, 5, 6)
    with pytest.raises(ValueError, match="same last dimension d_k, got 4 and 3"):
        scaled_dot_product_attention(q, torch.zeros(2, 5, 3), v)
    with pytest.raises(ValueError, match="same length L_k, got 5 and 4"):
        scaled_dot_product_attention(q, k, torch.zeros(2, 4, 6))
    with pytest.raises(ValueError, match="do not broadcast"):
        scaled_dot_product_attention(q, torch.zeros(3, 5, 4), torch.zeros(3, 5, 6))
    with pytest.raises(ValueError, match="floating-point"):
        scaled_dot_product_attention(q.long(), k, v)
    with pytest.raises(ValueError, match="floating-point"):
        scaled_dot_product_attention(torch.zeros(4), k, v)
    with pytest.raises(TypeError, match="bool tensor"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"does not broadcast to the scores' shape \(2, 3, 5\)"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 4, dtype=torch.bool))
    empty_row = torch.ones(3, 5, dtype=torch.bool)
    empty_row[1] = False
    with pytest.raises(ValueError, match="at least one key"):
        scaled_dot_product_attention(q, k, v, empty_row)
    with pytest.raises(ValueError, match="dropout must be in"):
        scaled_dot_product_attention(q, k, v, dropout=1.0)


def test_dropout_zeroes_weights_and_keeps_the_expectation():
    torch.manual_seed(0)
    q, k = torch.zeros(1, 4), torch.zeros(8, 4)  # uniform weights 1/8
    v = torch.ones(8, 1)
    outputs = torch.stack(
        [scaled_dot_product_attention(q, k, v, dropout=0.5)[0] for _ in range(2000)]
    )
    values = set(torch.round(outputs * 8).flatten().tolist())
    assert values <= {float(2 * n) for n in range(9)}  # each kept weight is 2/8
    assert abs(outputs.mean().item() - 1.0) < 0.05


def test_split_and_merge_heads_are_inverse():
    x = torch.arange(2 * 3 * 12.0).reshape(2, 3, 12)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 3)
    torch.testing.assert_close(heads[1, 2, 0], x[1, 0, 6:9])  # head 2 = features 6..8
    torch.testing.assert_close(merge_heads(heads), x)
    with pytest.raises(ValueError, match="divisible by 5"):
        split_heads(x, 5)
    with pytest.raises(ValueError, match="expected"):
        merge_heads(x)


def test_multi_head_attention_equals_per_head_attention_concatenated():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=12, n_heads=3, record_weights=True)
    x = torch.randn(2, 5, 12)
    mask = causal_mask(5)
    out = mha(x, mask=mask)
    heads = []
    for h in range(3):
        rows = slice(4 * h, 4 * h + 4)
        project = [(w.weight[rows], w.bias[rows]) for w in (mha.w_q, mha.w_k, mha.w_v)]
        q, k, v = (x @ weight.T + bias for weight, bias in project)
        heads.append(scaled_dot_product_attention(q, k, v, mask)[0])
    expected = mha.w_o(torch.cat(heads, dim=-1))
    torch.testing.assert_close(out, expected)
    assert mha.last_weights.shape == (2, 3, 5, 5)
    assert not mha.last_weights.requires_grad
    torch.testing.assert_close(mha.last_weights.sum(-1), torch.ones(2, 3, 5))


def test_cross_attention_reads_the_context():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=8, n_heads=2, record_weights=True)
    x, context = torch.randn(3, 4, 8), torch.randn(3, 6, 8)
    out = mha(x, context)
    assert out.shape == (3, 4, 8) and mha.last_weights.shape == (3, 2, 4, 6)
    # a padding mask on the context: the padded keys get no weight and do not matter
    mask = torch.tensor([True] * 4 + [False] * 2)[None, None, None, :]
    out = mha(x, context, mask)
    assert (mha.last_weights[..., 4:] == 0).all()
    changed = context.clone()
    changed[:, 4:] = 100.0
    torch.testing.assert_close(mha(x, changed, mask), out)


def test_self_attention_without_positions_is_permutation_equivariant():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=8, n_heads=2)
    x = torch.randn(1, 6, 8)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    torch.testing.assert_close(mha(x[:, perm]), mha(x)[:, perm])
    # rotary positions break the symmetry
    rope = MultiHeadAttention(d_model=8, n_heads=2, rope=True)
    assert not torch.allclose(rope(x[:, perm]), rope(x)[:, perm], atol=1e-4)


def test_rope_attention_scores_depend_on_relative_positions_only():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=8, n_heads=2, rope=True, bias=False, record_weights=True)
    token = torch.randn(1, 1, 8)
    # the same token repeated: every score depends only on the distance i - j
    mha(token.expand(1, 7, 8))
    weights = mha.last_weights[0]  # (heads, 7, 7); rows differ by normalisation only
    scores = weights.log()  # log softmax = scores - logsumexp(row)
    diffs = scores[:, :, :, None] - scores[:, :, None, :]  # score(i, j) - score(i, j')
    for shift in range(1, 4):  # rows i and i + shift see the same pattern, shifted
        torch.testing.assert_close(
            diffs[:, shift:, shift:, shift:], diffs[:, :-shift, :-shift, :-shift], atol=1e-4, rtol=0
        )


def test_multi_head_attention_errors():
    with pytest.raises(ValueError, match="divisible by n_heads"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="n_heads must be an integer >= 1, got 0"):
        MultiHeadAttention(8, 0)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(8, 2, dropout=-0.1)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"x must be \(batch, length, 8\)"):
        mha(torch.zeros(2, 3, 6))
    with pytest.raises(ValueError, match="context must be"):
        mha(torch.zeros(2, 3, 8), torch.zeros(3, 4, 8))
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(torch.zeros(1, 3, 8), mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool tensor"):
        mha(torch.zeros(1, 3, 8), mask=torch.ones(3, 3))
    with pytest.raises(ValueError, match="n_kv_heads \\(3\\) must divide n_heads \\(4\\)"):
        MultiHeadAttention(8, 4, n_kv_heads=3)
    with pytest.raises(ValueError, match="self-attention only"):
        MultiHeadAttention(8, 2, rope=True)(torch.zeros(1, 3, 8), torch.zeros(1, 3, 8))


def test_attention_dropout_only_while_training():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 5, 8)
    mha.eval()
    torch.testing.assert_close(mha(x), mha(x))
    mha.train()
    assert not torch.allclose(mha(x), mha(x))


# ------------------------------------------------------------------ the two paths, and GQA


def twin_layers(n_heads=4, n_kv_heads=None, rope=False, seed=0):
    """The same layer twice (float64): the fused path and the written-out path."""
    torch.manual_seed(seed)
    fused = MultiHeadAttention(16, n_heads, rope=rope, n_kv_heads=n_kv_heads).double()
    written = MultiHeadAttention(16, n_heads, rope=rope, n_kv_heads=n_kv_heads, record_weights=True)
    written.double().load_state_dict(fused.state_dict())
    return fused, written


@pytest.mark.parametrize("n_kv_heads", [None, 2, 1])
@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize("mask", ["none", "causal", "padding"])
def test_fused_and_written_out_paths_agree_in_values_and_gradients(n_kv_heads, rope, mask):
    fused, written = twin_layers(n_kv_heads=n_kv_heads, rope=rope)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 7, 16, generator=g, dtype=torch.float64)
    masks = {
        "none": None,
        "causal": causal_mask(7),
        "padding": (torch.arange(7) < torch.tensor([7, 4, 1])[:, None])[:, None, None, :],
    }
    outputs = []
    for layer in (fused, written):
        xi = x.clone().requires_grad_()
        out = layer(xi, mask=masks[mask])
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        outputs.append((out, xi.grad, [p.grad for p in layer.parameters()]))
    (out_f, grad_f, params_f), (out_w, grad_w, params_w) = outputs
    torch.testing.assert_close(out_f, out_w, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(grad_f, grad_w, atol=1e-12, rtol=1e-12)
    for a, b in zip(params_f, params_w, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    assert fused.last_weights is None and written.last_weights.shape == (3, 4, 7, 7)


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_grouped_query_attention_is_multi_head_attention_with_repeated_key_value_heads(
    n_kv_heads,
):
    """Copy the kv heads of a GQA layer, each repeated for its group, into a plain
    multi-head layer: the two give the same output."""
    torch.manual_seed(2)
    gqa = MultiHeadAttention(16, 4, n_kv_heads=n_kv_heads).double()
    mha = MultiHeadAttention(16, 4).double()
    group = torch.arange(4) // (4 // n_kv_heads)  # the kv head of each query head
    d_head = 4
    with torch.no_grad():
        for name in ("w_q", "w_o"):
            getattr(mha, name).load_state_dict(getattr(gqa, name).state_dict())
        for name in ("w_k", "w_v"):
            source, target = getattr(gqa, name), getattr(mha, name)
            target.weight.copy_(source.weight.view(n_kv_heads, d_head, 16)[group].reshape(16, 16))
            target.bias.copy_(source.bias.view(n_kv_heads, d_head)[group].reshape(16))
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    torch.testing.assert_close(gqa(x, mask=causal_mask(5)), mha(x, mask=causal_mask(5)))
    assert gqa.w_k.weight.shape == (n_kv_heads * d_head, 16)


def test_repeat_kv_repeats_each_head_for_its_group():
    x = torch.arange(2 * 3 * 1 * 2).view(2, 3, 1, 2).float()
    out = repeat_kv(x, 2)
    assert out.shape == (2, 6, 1, 2)
    for head in range(6):
        assert torch.equal(out[:, head], x[:, head // 2])
    assert repeat_kv(x, 1) is x
    with pytest.raises(ValueError, match="n_rep must be an integer >= 1"):
        repeat_kv(x, 0)


def test_record_attention_turns_recording_on_for_the_block_only():
    model = torch.nn.Sequential(MultiHeadAttention(8, 2), MultiHeadAttention(8, 2))
    x = torch.randn(1, 3, 8)
    with record_attention(model) as layers:
        for layer in layers:
            layer(x)
    assert [layer.last_weights.shape for layer in layers] == [(1, 2, 3, 3)] * 2
    assert not any(layer.record_weights for layer in model)


def test_under_bf16_autocast_the_fused_attention_runs_in_fp32_and_returns_bf16():
    fused, written = twin_layers()
    fused.float(), written.float()
    x = torch.randn(2, 6, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_fused, out_written = fused(x, mask=causal_mask(6)), written(x, mask=causal_mask(6))
    assert out_fused.dtype == out_written.dtype == torch.bfloat16
    torch.testing.assert_close(out_fused.float(), out_written.float(), atol=2e-2, rtol=2e-2)
    q = torch.randn(2, 4, 6, 4).bfloat16()
    direct = torch.nn.functional.scaled_dot_product_attention(q.float(), q.float(), q.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(
            fused_attention(q, q, q, None, 0.0, False), direct.bfloat16(), atol=0, rtol=0
        )
