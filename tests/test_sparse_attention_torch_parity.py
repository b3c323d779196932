"""Banded sliding-window attention against dense masked attention in PyTorch.

The reference is ``torch.nn.functional.scaled_dot_product_attention`` with the dense
boolean mask of the same pattern (``attn_mask``, True = may attend): outputs and the
gradients with respect to ``q``, ``k`` and ``v`` must agree, in float64, for random
shapes, windows and dilations. The masks also go through the course's own dense
attention (``llmcourse.modules.attention``), which must agree with PyTorch too.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.modules import (
    bigbird_mask,
    dilated_mask,
    longformer_mask,
    scaled_dot_product_attention,
    sliding_window_attention,
)

DTYPE = torch.float64


def qkv(seed, batch_shape, n, d_k, d_v, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    shapes = [(*batch_shape, n, d_k), (*batch_shape, n, d_k), (*batch_shape, n, d_v)]
    return [torch.randn(s, generator=g, dtype=DTYPE).requires_grad_(requires_grad) for s in shapes]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch_shape=st.sampled_from([(), (1,), (2,), (2, 3)]),
    n=st.integers(1, 24),
    d_k=st.integers(1, 6),
    d_v=st.integers(1, 5),
    window=st.integers(1, 9),
    dilation=st.integers(1, 3),
    causal=st.booleans(),
)
def test_banded_equals_dense_masked(seed, batch_shape, n, d_k, d_v, window, dilation, causal):
    q, k, v = qkv(seed, batch_shape, n, d_k, d_v)
    mask = dilated_mask(n, window, dilation, causal)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    got = sliding_window_attention(q, k, v, window, dilation, causal)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("window", "dilation", "causal"), [(3, 1, True), (2, 3, False)])
def test_banded_gradients_equal_dense_masked(window, dilation, causal):
    ours = qkv(0, (2, 2), 11, 4, 3, requires_grad=True)
    theirs = [t.detach().clone().requires_grad_() for t in ours]
    weights = torch.randn(2, 2, 11, 3, generator=torch.Generator().manual_seed(1), dtype=DTYPE)
    (sliding_window_attention(*ours, window, dilation, causal) * weights).sum().backward()
    mask = dilated_mask(11, window, dilation, causal)
    (F.scaled_dot_product_attention(*theirs, attn_mask=mask) * weights).sum().backward()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_window_longer_than_the_sequence_is_full_attention():
    q, k, v = qkv(2, (3,), 7, 4, 4)
    torch.testing.assert_close(
        sliding_window_attention(q, k, v, 50),
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
    )
    torch.testing.assert_close(
        sliding_window_attention(q, k, v, 50, causal=False), F.scaled_dot_product_attention(q, k, v)
    )


@pytest.mark.parametrize(
    "mask",
    [
        dilated_mask(16, 3, 2),
        dilated_mask(16, 4, 1, causal=False),
        longformer_mask(16, 3, [0, 7]),
        bigbird_mask(16, 2, [0], 2, causal=False, generator=torch.Generator().manual_seed(0)),
    ],
    ids=["dilated", "window-bidirectional", "longformer", "bigbird"],
)
def test_course_dense_attention_with_sparse_masks_matches_torch(mask):
    q, k, v = qkv(3, (2, 4), 16, 8, 5)
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert (weights[..., ~mask] == 0).all(), "a masked pair gets weight exactly 0"


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((5, 4), (6, 4), (6, 4)), "expected q and k"),
        (((5, 4), (5, 4), (4, 3)), "expected q and k"),
        (((4,), (4,), (4,)), "expected q and k"),
    ],
)
def test_banded_validation(shapes, message):
    q, k, v = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match=message):
        sliding_window_attention(q, k, v, 2)
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        sliding_window_attention(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2), 0)
