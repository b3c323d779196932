"""Tiled attention with an online softmax, against PyTorch's dense attention, and the
peak-memory measure that Chapter 7 uses.

The reference is ``torch.nn.functional.scaled_dot_product_attention`` (with
``is_causal`` for the causal case), in float64 so that the tolerances can be tight.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.modules import peak_tensor_bytes, scaled_dot_product_attention, tiled_attention

DTYPE = torch.float64


def qkv(seed, batch_shape, n_q, n_k, d_k, d_v, dtype=DTYPE, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(*batch_shape, n_q, d_k), (*batch_shape, n_k, d_k), (*batch_shape, n_k, d_v)]
    return [scale * torch.randn(s, generator=g, dtype=dtype) for s in shapes]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("block_size", [1, 3, 7, 16, 37, 64])  # 37 divides nothing here
def test_equals_torch_dense_attention(causal, block_size):
    q, k, v = qkv(0, (2, 3), 37, 37, 8, 5)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    got = tiled_attention(q, k, v, block_size, causal=causal)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch_shape=st.sampled_from([(), (1,), (3,), (2, 2)]),
    n=st.integers(1, 40),
    n_k=st.integers(1, 40),
    d_k=st.integers(1, 6),
    d_v=st.integers(1, 5),
    block_size=st.integers(1, 50),
    causal=st.booleans(),
)
def test_equals_torch_for_random_shapes(seed, batch_shape, n, n_k, d_k, d_v, block_size, causal):
    n_k = n if causal else n_k
    q, k, v = qkv(seed, batch_shape, n, n_k, d_k, d_v)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    got = tiled_attention(q, k, v, block_size, causal=causal)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_large_scores_do_not_overflow():
    # Scores near 1000: a softmax without the running maximum would compute exp(1000) = inf.
    q, k, v = qkv(1, (), 20, 20, 4, 3, scale=30.0)
    expected = F.scaled_dot_product_attention(q, k, v)
    assert (q @ k.T / 2).abs().max() > 700  # exp would overflow in float64
    got = tiled_attention(q, k, v, block_size=6)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_the_running_softmax_by_hand():
    # One query, two keys, one per block: the second block rescales the first one's sums.
    q = torch.tensor([[2.0]], dtype=DTYPE)
    k = torch.tensor([[1.0], [3.0]], dtype=DTYPE)
    v = torch.tensor([[10.0], [20.0]], dtype=DTYPE)
    s1, s2 = 2.0, 6.0  # q . k_j / sqrt(1)
    m = max(s1, s2)
    expected = (math.exp(s1 - m) * 10 + math.exp(s2 - m) * 20) / (
        math.exp(s1 - m) + math.exp(s2 - m)
    )
    got = tiled_attention(q, k, v, block_size=1)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_float32_and_gradients_match_dense():
    q, k, v = (t.requires_grad_() for t in qkv(2, (2,), 19, 19, 4, 4, dtype=torch.float32))
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    weights = torch.randn(2, 19, 4, generator=torch.Generator().manual_seed(3))
    (tiled_attention(q, k, v, 5, causal=True) * weights).sum().backward()
    (F.scaled_dot_product_attention(q2, k2, v2, is_causal=True) * weights).sum().backward()
    for ours, theirs in ((q, q2), (k, k2), (v, v2)):
        torch.testing.assert_close(ours.grad, theirs.grad)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q, k, v: tiled_attention(q, k, v, block_size=0), "block_size must be an integer"),
        (lambda q, k, v: tiled_attention(q, k, v, block_size=2.0), "block_size must be an integer"),
        (lambda q, k, v: tiled_attention(q[0, 0], k, v), "q must be a floating-point tensor"),
        (lambda q, k, v: tiled_attention(q.long(), k, v), "q must be a floating-point tensor"),
        (lambda q, k, v: tiled_attention(q, k[..., :2], v), "same last dimension d_k"),
        (lambda q, k, v: tiled_attention(q, k, v[..., :3, :]), "same length n_k"),
        (lambda q, k, v: tiled_attention(q[None], k, v), "same leading"),
        (lambda q, k, v: tiled_attention(q[..., :0, :], k, v), "at least one query"),
        (
            lambda q, k, v: tiled_attention(q[..., :4, :], k, v, causal=True),
            "as many queries as keys",
        ),
    ],
)
def test_validates(call, message):
    q, k, v = qkv(0, (2,), 6, 6, 4, 3)
    with pytest.raises(ValueError, match=message):
        call(q, k, v)


def test_peak_tensor_bytes_counts_what_is_alive_at_once():
    x = torch.zeros(1000)  # created outside: not counted

    def two_at_once():
        a = x + 1  # 4,000 bytes
        b = a * 2  # 4,000 more, while a is alive
        c = b[:10]  # a view: no new storage
        return c.sum()  # 4 bytes, kept

    def one_at_a_time():
        total = 0.0
        for _ in range(3):
            total += float((x + 1).sum())  # each temporary dies before the next
        return total

    result, peak = peak_tensor_bytes(two_at_once)
    assert result.item() == 20.0
    assert peak == 4000 + 4000 + 4
    _, peak = peak_tensor_bytes(one_at_a_time)
    assert peak == 4000 + 4  # x + 1, and its sum
    _, peak = peak_tensor_bytes(lambda: x.add_(1))  # in place: nothing new
    assert peak == 0


def test_dense_memory_is_quadratic_and_tiled_memory_is_not():
    with torch.no_grad():
        for n in (64, 256):
            q, k, v = qkv(0, (), n, n, 8, 8, dtype=torch.float32)
            _, dense = peak_tensor_bytes(scaled_dot_product_attention, q, k, v)
            _, tiled = peak_tensor_bytes(tiled_attention, q, k, v, 16)
            assert dense >= 2 * 4 * n * n  # the scores and the weights, n x n floats each
            assert tiled < 4 * (4 * n * 8 + 8 * 16 * 16)  # a few (n, d) and (16, 16) tensors
        q, k, v = qkv(0, (), 1024, 1024, 8, 8, dtype=torch.float32)
        _, small_blocks = peak_tensor_bytes(tiled_attention, q, k, v, 16)
        _, large_blocks = peak_tensor_bytes(tiled_attention, q, k, v, 256)
        assert large_blocks - small_blocks >= 2 * 4 * (256**2 - 16**2)  # tiles of scores
