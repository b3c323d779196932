"""Grading tests for the Chapter 6 exercises (solutions/ch06_transformer.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``: the points of a
parametrized test are shared by its cases, and an answer's points add up to those
announced in the notebook's heading. Inputs are random tensors of random sizes drawn
from the ``fresh_seed``; the expected values come from ``llmcourse.modules.attention``,
``llmcourse.modules.positional`` and ``llmcourse.modules.transformer`` (themselves checked against
PyTorch's attention and against published parameter counts), or from hand computations
written out in the test.
"""

from __future__ import annotations

import math

import pytest
import torch

from llmcourse.grading.expect import expect_tensor, expect_type
from llmcourse.models import GPT, gpt_parameter_counts
from llmcourse.modules import (
    MultiHeadAttention,
    TransformerConfig,
    apply_rope,
    causal_mask,
    scaled_dot_product_attention,
    sinusoidal_encoding,
)

NOTEBOOK = "ch06_transformer"

# What each answer must write itself (see llmcourse.grading.offlimits), besides the
# package's functions named like the answers: the package's and torch's attention, heads
# and parameter counts; and the package's attention stands in for the student's when
# multi_head_attention is graded, so that a mistake in attention costs points only once.
ATTENTION = "llmcourse.modules.attention"
TORCH_ATTENTION = [
    "torch.nn.functional.scaled_dot_product_attention",
    "aten::*scaled_dot_product*",
    "torch.nn.MultiheadAttention",
    "torch.nn.functional.multi_head_attention_forward",
]
OFF_LIMITS = {
    "attention": [f"{ATTENTION}.fused_attention", f"{ATTENTION}.MultiHeadAttention"]
    + TORCH_ATTENTION,
    "multi_head_attention": [
        f"{ATTENTION}.MultiHeadAttention",
        f"{ATTENTION}.split_heads",
        f"{ATTENTION}.merge_heads",
        "torch.nn.MultiheadAttention",
        "torch.nn.functional.multi_head_attention_forward",
    ],
    "sinusoidal_encoding": ["llmcourse.modules.positional.SinusoidalPositions"],
    "apply_rope": [
        "llmcourse.modules.positional.RotaryEmbedding",
        "llmcourse.modules.positional.rotate_pairs",
    ],
    "gpt_parameter_count": [
        "llmcourse.models.gpt.GPT",
        "llmcourse.models.gpt.gpt_parameter_counts",
    ],
}
STAND_INS = {"attention": f"from {ATTENTION} import scaled_dot_product_attention as attention"}
DTYPES = [torch.float32, torch.float64]
TOLERANCE = {torch.float32: {"rtol": 1e-4, "atol": 1e-5}, torch.float64: {"rtol": 1e-9}}


def sizes(g: torch.Generator, *highs: int) -> list[int]:
    return [int(torch.randint(1, high, (1,), generator=g)) for high in highs]


def random_mask(shape, g: torch.Generator) -> torch.Tensor:
    """A random boolean mask in which every query keeps at least one key."""
    mask = torch.rand(shape, generator=g) < 0.5
    keep = torch.randint(0, shape[-1], shape[:-1], generator=g)
    mask.scatter_(-1, keep[..., None], True)
    return mask


# ------------------------------------------------------------------------ attention
@pytest.mark.exercise(
    "attention",
    points=0.5,
    hint="Scores are q @ k^T divided by sqrt(d_k), then a softmax over the keys (last dim).",
)
def test_attention_hand_example(student):
    q = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    k = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    v = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    output, weights = student.call("attention", q, k, v)
    p = math.e / (math.e + 1)  # scores 2 / sqrt(4) = 1 and 0
    expect_tensor(weights, torch.tensor([[p, 1 - p]]), what="the weights")
    expect_tensor(output, torch.tensor([[10 * p, 10 * (1 - p)]]), what="the output")


@pytest.mark.exercise(
    "attention",
    points=1,
    hint="Work on the last two dimensions only (k.transpose(-2, -1)), so that batch and head "
    "dimensions pass through; return (output, weights).",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_matches_reference_without_mask(student, fresh_seed, dtype):
    g = torch.Generator().manual_seed(fresh_seed)
    batch, heads, l_q, l_k, d_k, d_v = sizes(g, 4, 4, 8, 8, 9, 9)
    q = torch.randn(batch, heads, l_q, d_k, generator=g, dtype=dtype)
    k = torch.randn(batch, heads, l_k, d_k, generator=g, dtype=dtype)
    v = torch.randn(batch, heads, l_k, d_v, generator=g, dtype=dtype)
    output, weights = student.call("attention", q, k, v)
    expected_output, expected_weights = scaled_dot_product_attention(q, k, v)
    what = f"attention (seed {fresh_seed})"
    expect_tensor(weights, expected_weights, **TOLERANCE[dtype], what=f"the weights of {what}")
    expect_tensor(output, expected_output, **TOLERANCE[dtype], what=f"the output of {what}")


@pytest.mark.exercise(
    "attention",
    points=1,
    hint="Set the scores where the mask is False to -inf before the softmax "
    "(scores.masked_fill(~mask, float('-inf'))); the mask may need broadcasting.",
)
@pytest.mark.parametrize("kind", ["causal", "random", "per-batch"])
def test_attention_with_masks(student, fresh_seed, kind):
    g = torch.Generator().manual_seed(fresh_seed)
    batch, length, d_k = sizes(g, 4, 9, 9)
    q, k, v = (torch.randn(batch, length, d_k, generator=g) for _ in range(3))
    masks = {
        "causal": causal_mask(length),
        "random": random_mask((length, length), g),
        "per-batch": random_mask((batch, length, length), g),
    }
    mask = masks[kind]
    output, weights = student.call("attention", q, k, v, mask)
    expected_output, expected_weights = scaled_dot_product_attention(q, k, v, mask)
    what = f"attention with a {kind} mask (seed {fresh_seed})"
    expect_tensor(weights, expected_weights, **TOLERANCE[torch.float32], what=f"weights of {what}")
    expect_tensor(output, expected_output, **TOLERANCE[torch.float32], what=f"output of {what}")
    assert (weights[~mask.expand_as(weights)] == 0).all(), "masked keys must get weight exactly 0"


@pytest.mark.exercise(
    "attention",
    points=0.5,
    hint="Raise ValueError when q and k have different last dimensions, and when a row of "
    "the mask (after broadcasting) is all False.",
)
@pytest.mark.parametrize("case", ["d_k", "empty-row"])
def test_attention_errors(student, case):
    q, k, v = torch.zeros(3, 4), torch.zeros(5, 4), torch.zeros(5, 2)
    if case == "d_k":
        with pytest.raises(ValueError):
            student.call("attention", q, torch.zeros(5, 3), v)
    else:
        mask = torch.ones(3, 5, dtype=torch.bool)
        mask[1] = False
        with pytest.raises(ValueError):
            student.call("attention", q, k, v, mask)


# ------------------------------------------------------------- multi_head_attention
def reference_mha(d_model, n_heads, weights, x, mask=None):
    """llmcourse's MultiHeadAttention with the given (d, d) matrices (nn.Linear stores W^T)."""
    mha = MultiHeadAttention(d_model, n_heads, bias=False).to(x.dtype)
    with torch.no_grad():
        for linear, w in zip((mha.w_q, mha.w_k, mha.w_v, mha.w_o), weights, strict=True):
            linear.weight.copy_(w.T)
    return mha(x, mask=mask).detach()


@pytest.mark.exercise(
    "multi_head_attention",
    points=0.5,
    hint="With one head, multi-head attention is attention(x @ w_q, x @ w_k, x @ w_v) @ w_o.",
)
def test_multi_head_attention_with_one_head(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    batch, length, d = sizes(g, 4, 7, 9)
    x = torch.randn(batch, length, d, generator=g, dtype=torch.float64)
    w = [torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d) for _ in range(4)]
    got = student.call("multi_head_attention", x, *w, 1)
    expected = scaled_dot_product_attention(x @ w[0], x @ w[1], x @ w[2])[0] @ w[3]
    expect_tensor(got, expected, rtol=1e-9, what=f"one-head attention (seed {fresh_seed})")


@pytest.mark.exercise(
    "multi_head_attention",
    points=1.5,
    hint="Head i uses columns i*d_head .. (i+1)*d_head - 1 of x @ w_q, x @ w_k and x @ w_v: "
    "reshape to (batch, length, heads, d_head) and move the heads before the length; "
    "concatenate the heads back in the same order before multiplying by w_o.",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_multi_head_attention_matches_reference(student, fresh_seed, dtype):
    g = torch.Generator().manual_seed(fresh_seed)
    batch, length, n_heads, d_head = sizes(g, 4, 8, 5, 5)
    d = n_heads * d_head
    x = torch.randn(batch, length, d, generator=g, dtype=dtype)
    w = [torch.randn(d, d, generator=g, dtype=dtype) / math.sqrt(d) for _ in range(4)]
    got = student.call("multi_head_attention", x, *w, n_heads)
    expected = reference_mha(d, n_heads, w, x)
    what = f"{n_heads}-head attention, d_model {d} (seed {fresh_seed})"
    expect_tensor(got, expected, **TOLERANCE[dtype], what=what)


@pytest.mark.exercise(
    "multi_head_attention",
    points=0.5,
    hint="Pass the mask to the attention of every head: it broadcasts over batch and heads.",
)
def test_multi_head_attention_with_a_causal_mask(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    batch, length = sizes(g, 4, 9)
    x = torch.randn(batch, length, 12, generator=g, dtype=torch.float64)
    w = [torch.randn(12, 12, generator=g, dtype=torch.float64) / math.sqrt(12) for _ in range(4)]
    mask = causal_mask(length)
    got = student.call("multi_head_attention", x, *w, 3, mask)
    expected = reference_mha(12, 3, w, x, mask)
    expect_tensor(got, expected, rtol=1e-9, what=f"causal 3-head attention (seed {fresh_seed})")


@pytest.mark.exercise(
    "multi_head_attention",
    points=0.5,
    hint="Raise ValueError when d_model % n_heads != 0.",
)
def test_multi_head_attention_rejects_indivisible_heads(student):
    w = torch.eye(6)
    with pytest.raises(ValueError):
        student.call("multi_head_attention", torch.zeros(1, 2, 6), w, w, w, w, 4)


# -------------------------------------------------------------- sinusoidal_encoding
@pytest.mark.exercise(
    "sinusoidal_encoding",
    points=0.5,
    hint="Row 0 is [0, 1, 0, 1, ...] (sin 0 and cos 0); even columns hold sines.",
)
def test_sinusoidal_encoding_hand_values(student):
    got = student.call("sinusoidal_encoding", 3, 4)
    w1 = 1 / 100  # 10000^(-2/4)
    expected = torch.tensor(
        [
            [0.0, 1.0, 0.0, 1.0],
            [math.sin(1), math.cos(1), math.sin(w1), math.cos(w1)],
            [math.sin(2), math.cos(2), math.sin(2 * w1), math.cos(2 * w1)],
        ]
    )
    expect_tensor(got, expected, rtol=1e-5, atol=1e-6, what="sinusoidal_encoding(3, 4)")


@pytest.mark.exercise(
    "sinusoidal_encoding",
    points=1,
    hint="w_i = 10000 ** (-2 * i / d_model) for i = 0 .. d_model/2 - 1; PE[:, 0::2] = sin, "
    "PE[:, 1::2] = cos; return float32.",
)
def test_sinusoidal_encoding_matches_reference(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    n_positions, half = sizes(g, 200, 33)
    got = student.call("sinusoidal_encoding", n_positions, 2 * half)
    expected = sinusoidal_encoding(n_positions, 2 * half)
    what = f"sinusoidal_encoding({n_positions}, {2 * half})"
    expect_tensor(got, expected, rtol=0, atol=1e-4, what=what)


@pytest.mark.exercise(
    "sinusoidal_encoding",
    points=0.5,
    hint="Raise ValueError for an odd d_model or a size smaller than 1.",
)
@pytest.mark.parametrize(("n_positions", "d_model"), [(4, 5), (0, 4), (4, 0)])
def test_sinusoidal_encoding_errors(student, n_positions, d_model):
    with pytest.raises(ValueError):
        student.call("sinusoidal_encoding", n_positions, d_model)


# ----------------------------------------------------------------------- apply_rope
@pytest.mark.exercise(
    "apply_rope",
    points=1,
    hint="Rotate the pair (x[..., 2i], x[..., 2i+1]) by the angle positions[row] * w_i, "
    "w_i = 10000 ** (-2i / d); keep the shape and dtype of x.",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_apply_rope_matches_reference(student, fresh_seed, dtype):
    g = torch.Generator().manual_seed(fresh_seed)
    batch, heads, length, half = sizes(g, 3, 3, 10, 9)
    x = torch.randn(batch, heads, length, 2 * half, generator=g, dtype=dtype)
    positions = torch.randint(0, 500, (length,), generator=g)
    got = student.call("apply_rope", x, positions)
    expected = apply_rope(x, positions)
    what = f"apply_rope on {tuple(x.shape)} (seed {fresh_seed})"
    expect_tensor(got, expected, **TOLERANCE[dtype], what=what)


@pytest.mark.exercise(
    "apply_rope",
    points=0.5,
    hint="With the right rotation, q(m) . k(n) depends only on m - n, and position 0 "
    "leaves a vector unchanged.",
)
def test_apply_rope_relative_property(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    q, k = torch.randn(2, 1, 16, generator=g, dtype=torch.float64)
    m, n, shift = (int(t) for t in torch.randint(0, 300, (3,), generator=g))

    def score(i, j):
        rotated_q = student.call("apply_rope", q, torch.tensor([i]))
        rotated_k = student.call("apply_rope", k, torch.tensor([j]))
        return float(rotated_q @ rotated_k.T)

    assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-9), (
        f"q(m) . k(n) changed when both positions moved by {shift} (m={m}, n={n})"
    )
    expect_tensor(student.call("apply_rope", q, torch.tensor([0])), q, rtol=1e-12)


@pytest.mark.exercise("apply_rope", points=0.5, hint="Raise ValueError for an odd last dimension.")
def test_apply_rope_rejects_odd_sizes(student):
    with pytest.raises(ValueError):
        student.call("apply_rope", torch.zeros(3, 5), torch.arange(3))


# -------------------------------------------------------------- gpt_parameter_count
@pytest.mark.exercise(
    "gpt_parameter_count",
    points=0.5,
    hint="GPT-2 small: 50257 x 768 embeddings, 1024 x 768 positions, 12 blocks of "
    "7,087,872 parameters and a final LayerNorm of 2 x 768.",
)
def test_gpt_parameter_count_of_gpt2_small(student):
    got = student.call("gpt_parameter_count", 50257, 1024, 768, 12)
    expect_type(got, int, what="gpt_parameter_count(...)")
    assert got == 124_439_808, f"GPT-2 small has 124,439,808 parameters, got {got:,}"


@pytest.mark.exercise(
    "gpt_parameter_count",
    points=1.5,
    hint="Per block: 4 d^2 + 4 d (attention), 2 d d_ff + d_ff + d (feed-forward), 4 d (two "
    "LayerNorms); plus embeddings, positions, the final LayerNorm (2 d), and vocab x d "
    "more when the output layer is not tied.",
)
@pytest.mark.parametrize("tie_weights", [True, False])
def test_gpt_parameter_count_matches_the_model(student, fresh_seed, tie_weights):
    g = torch.Generator().manual_seed(fresh_seed)
    vocab_size, block_size, d_model, n_layers, d_ff = sizes(g, 500, 200, 65, 7, 300)
    if int(torch.randint(0, 2, (1,), generator=g)):
        d_ff = None
    config = TransformerConfig(
        vocab_size, block_size, d_model, 1, n_layers, d_ff=d_ff, tie_weights=tie_weights
    )
    with torch.device("meta"):
        counted = sum(p.numel() for p in GPT(config).parameters())
    assert counted == gpt_parameter_counts(config)["total"]
    args = (vocab_size, block_size, d_model, n_layers, d_ff, tie_weights)
    got = student.call("gpt_parameter_count", *args)
    expect_type(got, int, what="gpt_parameter_count(...)")
    assert got == counted, f"gpt_parameter_count{args}: expected {counted:,}, got {got:,}"
