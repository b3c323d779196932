"""Grading tests for the Chapter 7 exercises (solutions/ch07_efficient_attention.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``: the points of a
parametrized test are shared by its cases, and an answer's points add up to those
announced in the notebook's heading. Sizes and tensors are drawn from the
``fresh_seed``; the expected values come from ``llmcourse.modules.sparse_attention`` (checked
against masks built by hand), ``llmcourse.modules.linear_attention`` (checked against a naive
loop), ``llmcourse.modules.kv_cache`` (checked against published numbers),
``torch.nn.functional.unfold``, or a computation written out in the test.
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from llmcourse.grading.expect import expect_tensor, expect_type
from llmcourse.modules import (
    PUBLISHED_MODELS,
    dilated_mask,
    elu_feature_map,
    linear_attention,
    sliding_window_mask,
)
from llmcourse.modules import kv_cache_bytes as reference_kv_cache_bytes

NOTEBOOK = "ch07_efficient_attention"

# What each answer must write itself (see llmcourse.grading.offlimits), besides the
# package's functions named like the answers.
OFF_LIMITS = {
    "linear_attention_recurrent": [
        "llmcourse.modules.linear_attention.linear_attention",
        "llmcourse.modules.linear_attention.linear_attention_step",
    ],
    "kv_cache_bytes": ["llmcourse.modules.kv_cache.hybrid_cache_bytes"],
    "patchify": ["torch.nn.functional.unfold", "aten::im2col"],
}
DTYPES = [torch.float32, torch.float64]
TOLERANCE = {torch.float32: {"rtol": 1e-4, "atol": 1e-5}, torch.float64: {"rtol": 1e-9}}


# -------------------------------------------------------------- sliding_window_mask
@pytest.mark.exercise(
    "sliding_window_mask",
    points=0.5,
    hint="Query i (row) may see key j (column) when 0 <= i - j < window; return torch.bool.",
)
def test_sliding_window_mask_hand_example(student):
    expected = torch.tensor(
        [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]
    ).bool()
    expect_tensor(student.call("sliding_window_mask", 5, 2), expected, what="the (5, 2) mask")


@pytest.mark.exercise(
    "sliding_window_mask",
    points=1,
    hint="Compare i - j with 0 and window for all pairs at once: torch.arange(n) as a "
    "column minus torch.arange(n) as a row.",
)
def test_sliding_window_mask_matches_reference(student, fresh_seed):
    rng = random.Random(fresh_seed)
    for _ in range(3):
        n, window = rng.randint(1, 30), rng.randint(1, 12)
        got = student.call("sliding_window_mask", n, window)
        expect_tensor(got, sliding_window_mask(n, window), what=f"the mask for n={n}, w={window}")


@pytest.mark.exercise(
    "sliding_window_mask",
    points=0.5,
    hint="Raise ValueError when n < 1 or window < 1.",
)
@pytest.mark.parametrize(("n", "window"), [(0, 2), (4, 0), (-3, 2)])
def test_sliding_window_mask_rejects_bad_sizes(student, n, window):
    with pytest.raises(ValueError):
        student.call("sliding_window_mask", n, window)


# --------------------------------------------------------------------- dilated_mask
@pytest.mark.exercise(
    "dilated_mask",
    points=0.5,
    hint="Key j is allowed when i - j is 0, d, 2d, ... or (window - 1) d.",
)
def test_dilated_mask_hand_example(student):
    n, offsets = 7, {0, 2, 4}  # window 3, dilation 2
    expected = torch.tensor([[i - j in offsets for j in range(n)] for i in range(n)])
    expect_tensor(student.call("dilated_mask", n, 3, 2), expected, what="the (7, 3, 2) mask")


@pytest.mark.exercise(
    "dilated_mask",
    points=1,
    hint="Three conditions on the distance i - j: >= 0, < window * dilation, and a multiple "
    "of dilation.",
)
def test_dilated_mask_matches_reference(student, fresh_seed):
    rng = random.Random(fresh_seed)
    for _ in range(3):
        n, window, dilation = rng.randint(1, 30), rng.randint(1, 6), rng.randint(1, 5)
        got = student.call("dilated_mask", n, window, dilation)
        expected = dilated_mask(n, window, dilation)
        expect_tensor(got, expected, what=f"the mask for n={n}, w={window}, d={dilation}")


@pytest.mark.exercise(
    "dilated_mask",
    points=0.5,
    hint="Raise ValueError when n, window or dilation is smaller than 1.",
)
@pytest.mark.parametrize("args", [(0, 2, 2), (5, 0, 2), (5, 2, 0)])
def test_dilated_mask_rejects_bad_sizes(student, args):
    with pytest.raises(ValueError):
        student.call("dilated_mask", *args)


# ------------------------------------------------------- linear_attention_recurrent
def draw_qkv(seed: int, dtype: torch.dtype):
    g = torch.Generator().manual_seed(seed)
    n, d_k, d_v = (int(torch.randint(1, hi, (1,), generator=g)) for hi in (12, 7, 6))
    return (
        torch.randn(n, d_k, generator=g, dtype=dtype),
        torch.randn(n, d_k, generator=g, dtype=dtype),
        torch.randn(n, d_v, generator=g, dtype=dtype),
    )


@pytest.mark.exercise(
    "linear_attention_recurrent",
    points=1.5,
    hint="phi(x) = F.elu(x) + 1; at step i add the outer product phi(k_i)^T v_i to mu and "
    "phi(k_i) to nu before computing o_i = phi(q_i) mu / (phi(q_i) . nu).",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_attention_outputs_match_reference(student, fresh_seed, dtype):
    q, k, v = draw_qkv(fresh_seed, dtype)
    got = student.call("linear_attention_recurrent", q, k, v)
    expect_type(got, tuple, list, what="the result (outputs, mu, nu)")
    assert len(got) == 3, f"expected 3 values (outputs, mu, nu), got {len(got)}"
    expected = linear_attention(q, k, v, causal=True)
    expect_tensor(got[0], expected, **TOLERANCE[dtype], what=f"the outputs (seed {fresh_seed})")


@pytest.mark.exercise(
    "linear_attention_recurrent",
    points=1,
    hint="The final state sums over all positions: mu = sum_i phi(k_i)^T v_i, shape "
    "(d_k, d_v), and nu = sum_i phi(k_i), shape (d_k,).",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_attention_final_state(student, fresh_seed, dtype):
    q, k, v = draw_qkv(fresh_seed, dtype)
    _, mu, nu = student.call("linear_attention_recurrent", q, k, v)
    phi_k = elu_feature_map(k)
    expected_mu = torch.zeros(k.shape[1], v.shape[1], dtype=dtype)
    for i in range(k.shape[0]):
        expected_mu += torch.outer(phi_k[i], v[i])
    expect_tensor(mu, expected_mu, **TOLERANCE[dtype], what="the final mu")
    expect_tensor(nu, phi_k.sum(dim=0), **TOLERANCE[dtype], what="the final nu")


@pytest.mark.exercise(
    "linear_attention_recurrent",
    points=0.5,
    hint="q and k must have one shape, v as many rows, all 2-D with at least one row: "
    "raise ValueError otherwise.",
)
@pytest.mark.parametrize(
    "shapes",
    [((4, 3), (4, 2), (4, 2)), ((4, 3), (4, 3), (5, 2)), ((2, 4, 3), (2, 4, 3), (2, 4, 2))],
    ids=["d_k", "n", "3-D"],
)
def test_linear_attention_rejects_bad_shapes(student, shapes):
    q, k, v = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError):
        student.call("linear_attention_recurrent", q, k, v)


# ------------------------------------------------------------------ kv_cache_bytes
@pytest.mark.exercise(
    "kv_cache_bytes",
    points=0.5,
    hint="2 (a key and a value) * layers * kv heads * head_dim * tokens * batch * bytes.",
)
def test_kv_cache_bytes_hand_example(student):
    got = student.call("kv_cache_bytes", 3, 2, 4, 5, 6, 4)
    expect_type(got, int, what="the number of bytes")
    assert got == 2 * 3 * 2 * 4 * 5 * 6 * 4, f"expected 5,760 bytes, got {got:,}"


@pytest.mark.exercise(
    "kv_cache_bytes",
    points=1,
    hint="Use n_kv_heads (not the number of query heads), and with a window only "
    "min(seq_len, window) tokens are cached.",
)
def test_kv_cache_bytes_of_published_models(student, fresh_seed):
    rng = random.Random(fresh_seed)
    for model in PUBLISHED_MODELS:
        seq_len, batch, nbytes = rng.randint(0, 200_000), rng.randint(1, 64), rng.choice([1, 2, 4])
        args = (model.n_layers, model.n_kv_heads, model.head_dim, seq_len, batch, nbytes)
        got = student.call("kv_cache_bytes", *args, window=model.window)
        expected = model.cache_bytes(seq_len, batch, nbytes)
        assert got == expected == reference_kv_cache_bytes(*args, window=model.window), (
            f"{model.name}, {seq_len:,} tokens, batch {batch}, {nbytes} bytes per value: "
            f"expected {expected:,} bytes, got {got}"
        )


@pytest.mark.exercise(
    "kv_cache_bytes",
    points=0.5,
    hint="Raise ValueError for seq_len < 0, for any size < 1, and for window < 1.",
)
@pytest.mark.parametrize(
    ("args", "window"),
    [((0, 1, 1, 1, 1, 2), None), ((1, 1, 1, -1, 1, 2), None), ((1, 1, 1, 1, 1, 0), None)]
    + [((1, 1, 1, 1, 1, 2), 0)],
)
def test_kv_cache_bytes_rejects_bad_sizes(student, args, window):
    with pytest.raises(ValueError):
        student.call("kv_cache_bytes", *args, window=window)


# ------------------------------------------------------------------------- patchify
@pytest.mark.exercise(
    "patchify",
    points=0.5,
    hint="The first patch is the top-left P x P block, then the block to its right.",
)
def test_patchify_hand_example(student):
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    expected = torch.tensor(
        [[[0.0, 1, 4, 5], [2.0, 3, 6, 7], [8.0, 9, 12, 13], [10.0, 11, 14, 15]]]
    )
    expect_tensor(student.call("patchify", image, 2), expected, what="patchify(4 x 4 image, 2)")


@pytest.mark.exercise(
    "patchify",
    points=1,
    hint="reshape to (B, C, H/P, P, W/P, P), permute to (B, H/P, W/P, C, P, P), reshape to "
    "(B, N, C*P*P).",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_patchify_matches_unfold(student, fresh_seed, dtype):
    g = torch.Generator().manual_seed(fresh_seed)
    b, c, rows, cols, p = (int(torch.randint(1, 5, (1,), generator=g)) for _ in range(5))
    images = torch.randn(b, c, rows * p, cols * p, generator=g, dtype=dtype)
    expected = F.unfold(images, kernel_size=p, stride=p).transpose(1, 2)
    got = student.call("patchify", images, p)
    expect_tensor(got, expected, rtol=0, atol=0, what=f"the patches (seed {fresh_seed})")


@pytest.mark.exercise(
    "patchify",
    points=0.5,
    hint="Raise ValueError unless images is 4-D with H and W multiples of patch_size.",
)
@pytest.mark.parametrize(
    ("shape", "p"), [((1, 1, 4, 6), 4), ((1, 1, 6, 4), 4), ((1, 4, 4), 2)], ids=["W", "H", "3-D"]
)
def test_patchify_rejects_bad_shapes(student, shape, p):
    with pytest.raises(ValueError):
        student.call("patchify", torch.zeros(shape), p)
