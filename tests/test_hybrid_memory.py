"""The hybrid memory against a streaming implementation written out in the test.

The stream reads one position at a time: it keeps the last ``window`` keys and values
(the local memory), and when a key leaves the window it adds it to the running sums
``mu += phi(k)^T v``, ``nu += phi(k)`` (the compressed memory). Its outputs must equal
the all-positions-at-once :func:`hybrid_attention`.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.modules import compressed_memory_read, hybrid_attention, sliding_window_mask

DTYPE = torch.float64


def stream(q, k, v, window, gate):
    """q, k: (n, d_k), v: (n, d_v); local softmax attention + compressed linear memory."""
    d_k, d_v = k.shape[1], v.shape[1]
    local_k, local_v = [], []
    mu, nu = torch.zeros(d_k, d_v, dtype=DTYPE), torch.zeros(d_k, dtype=DTYPE)
    outputs, memory_sizes = [], []
    for i in range(q.shape[0]):
        local_k.append(k[i])
        local_v.append(v[i])
        if len(local_k) > window:  # evict the oldest key into the compressed memory
            old_k, old_v = local_k.pop(0), local_v.pop(0)
            phi_k = F.elu(old_k) + 1
            mu, nu = mu + torch.outer(phi_k, old_v), nu + phi_k
        scores = torch.stack(local_k) @ q[i] / math.sqrt(d_k)
        local = scores.softmax(0) @ torch.stack(local_v)
        if i >= window:
            phi_q = F.elu(q[i]) + 1
            outputs.append((1 - gate) * local + gate * (phi_q @ mu) / (phi_q @ nu))
        else:
            outputs.append(local)
        memory_sizes.append(len(local_k) * (d_k + d_v) + mu.numel() + nu.numel())
    return torch.stack(outputs), memory_sizes


def qkv(seed, batch_shape, n, d_k, d_v):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(*batch_shape, n, d_k, generator=g, dtype=DTYPE),
        torch.randn(*batch_shape, n, d_k, generator=g, dtype=DTYPE),
        torch.randn(*batch_shape, n, d_v, generator=g, dtype=DTYPE),
    )


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 14),
    window=st.integers(1, 6),
    gate=st.floats(0, 1),
    d_k=st.integers(1, 4),
    d_v=st.integers(1, 3),
)
def test_parallel_equals_streaming(seed, n, window, gate, d_k, d_v):
    q, k, v = qkv(seed, (), n, d_k, d_v)
    expected, _ = stream(q, k, v, window, gate)
    torch.testing.assert_close(hybrid_attention(q, k, v, window, gate), expected)


def test_the_streaming_memory_stops_growing():
    q, k, v = qkv(0, (), 20, 4, 3)
    _, sizes = stream(q, k, v, 5, 0.5)
    assert sizes[4:] == [5 * (4 + 3) + 4 * 3 + 4] * 16


def test_gate_zero_is_the_sliding_window():
    q, k, v = qkv(1, (2, 3), 11, 4, 4)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=sliding_window_mask(11, 3))
    torch.testing.assert_close(hybrid_attention(q, k, v, 3, gate=0.0), expected)


def test_memory_read_is_linear_attention_over_the_evicted_keys():
    q, k, v = qkv(2, (), 9, 3, 2)
    read, has_memory = compressed_memory_read(q, k, v, window=4)
    assert has_memory.tolist() == [False] * 4 + [True] * 5
    assert (read[:4] == 0).all()
    for i in range(4, 9):
        s = (F.elu(q[i]) + 1) @ (F.elu(k[: i - 3]) + 1).T  # keys 0 .. i - 4
        torch.testing.assert_close(read[i], s @ v[: i - 3] / s.sum())


def test_one_gate_per_head():
    q, k, v = qkv(3, (2,), 8, 3, 3)  # two heads
    gate = torch.tensor([0.0, 1.0], dtype=DTYPE).reshape(2, 1, 1)
    out = hybrid_attention(q, k, v, 2, gate)
    torch.testing.assert_close(out[0], hybrid_attention(q[0], k[0], v[0], 2, 0.0))
    torch.testing.assert_close(out[1], hybrid_attention(q[1], k[1], v[1], 2, 1.0))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"window": 0}, ValueError, "window must be an integer >= 1, got 0"),
        ({"window": 2, "gate": 1.5}, ValueError, r"gate must be in \[0, 1\]"),
    ],
)
def test_validation(kwargs, error, message):
    q, k, v = qkv(4, (), 5, 2, 2)
    with pytest.raises(error, match=message):
        hybrid_attention(q, k, v, **kwargs)
    with pytest.raises(ValueError, match="expected q and k"):
        compressed_memory_read(q, k[:4], v, 2)
