"""Grading tests for the Chapter 13 exercises (solutions/ch13_peft_compression.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``: the points of a
parametrized test are shared by its cases, and an answer's points add up to those
announced in the notebook's heading. Inputs are random, drawn from the ``fresh_seed``;
the expected values come from ``llmcourse.peft.LoRALinear`` (forward, merge, unmerge) and
``llmcourse.compression`` (quantization, pruning masks, the distillation loss), each
tested on its own, or from hand computations written out here.

Rounding: the exercise divides by the scale, ``llmcourse.compression`` multiplies by its
reciprocal (as PyTorch does). The two can differ by one code for a number within a
rounding error of a half step; such numbers accept either neighbour.
"""

from __future__ import annotations

import math

import pytest
import torch

from llmcourse.compression import absmax_quantize, distillation_loss, magnitude_mask
from llmcourse.grading.expect import expect_float, expect_tensor, expect_type
from llmcourse.peft import LoRALinear

NOTEBOOK = "ch13_peft_compression"

# What each answer must write itself (see llmcourse.grading.offlimits), besides the
# package's functions named like the answers.
LORA = "llmcourse.peft.lora.LoRALinear"
OFF_LIMITS = {
    "lora_forward": [LORA],
    "lora_merge": [LORA],
    "absmax_quantize": [
        "llmcourse.compression.quantize.quantize",
        "llmcourse.compression.quantize.fake_quantize",
        "torch.quantize_per_tensor",
    ],
    "blockwise_quantize": [
        "llmcourse.compression.quantize.absmax_quantize",
        "llmcourse.compression.quantize.quantize",
        "llmcourse.compression.quantize.fake_quantize",
    ],
    "magnitude_mask": [
        "llmcourse.compression.pruning.keep_top",
        "llmcourse.compression.pruning.layerwise_magnitude_masks",
        "llmcourse.compression.pruning.global_magnitude_masks",
    ],
    "distillation_loss": [
        "llmcourse.compression.distillation.kd_loss",
        "torch.nn.functional.kl_div",
        "aten::kl_div",
    ],
}


def size(g: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high, (1,), generator=g))


def random_lora(g: torch.Generator, bias: bool = True) -> tuple[LoRALinear, float]:
    """A LoRA layer with random sizes, rank, alpha and a non-zero B (float64)."""
    d_in, d_out, r = size(g, 1, 20), size(g, 1, 20), size(g, 1, 6)
    alpha = float(torch.rand(1, generator=g)) * 16 + 0.5
    base = torch.nn.Linear(d_in, d_out, bias=bias).double()
    with torch.no_grad():
        base.weight.copy_(torch.randn(d_out, d_in, generator=g, dtype=torch.float64))
        if bias:
            base.bias.copy_(torch.randn(d_out, generator=g, dtype=torch.float64))
    layer = LoRALinear(base, r, alpha)
    with torch.no_grad():
        layer.lora_A.copy_(torch.randn(r, d_in, generator=g, dtype=torch.float64))
        layer.lora_B.copy_(torch.randn(d_out, r, generator=g, dtype=torch.float64))
    return layer, alpha


# --------------------------------------------------------------------------- LoRA forward
@pytest.mark.exercise(
    "lora_forward",
    points=1,
    hint="x @ weight.T + bias + (alpha / r) * (x @ A.T) @ B.T, where r = A.shape[0].",
)
def test_lora_forward_hand_example(student):
    weight = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    A, B = torch.tensor([[1.0, -1.0]]), torch.tensor([[0.5], [0.0], [-1.0]])
    x = torch.tensor([[2.0, 1.0], [0.0, 1.0]])
    bias = torch.tensor([0.0, 1.0, -1.0])
    # x A^T = [1, -1]; (alpha / r) = 2; update = 2 * [[0.5, 0, -1], [-0.5, 0, 1]]
    expected = torch.tensor([[3.0, 3.0, 0.0], [-1.0, 3.0, 2.0]])
    got = student.call("lora_forward", x, weight, bias, A, B, 2.0)
    expect_tensor(got, expected, what="lora_forward on the hand example")


@pytest.mark.exercise(
    "lora_forward",
    points=1.5,
    hint="Any number of leading dimensions: use x @ weight.T (not torch.mm); the bias may be "
    "None; scale the low-rank path by alpha / r with r the number of rows of A.",
)
def test_lora_forward_random(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    layer, alpha = random_lora(g, bias=bool(fresh_seed % 2))
    lead = [size(g, 1, 4) for _ in range(size(g, 1, 3))]
    x = torch.randn(*lead, layer.in_features, generator=g, dtype=torch.float64)
    with torch.no_grad():
        expected = layer(x)
    bias = layer.base.bias
    got = student.call(
        "lora_forward",
        x,
        layer.base.weight.detach(),
        None if bias is None else bias.detach(),
        layer.lora_A.detach(),
        layer.lora_B.detach(),
        alpha,
    )
    expect_tensor(got, expected, rtol=1e-9, atol=1e-9, what=f"lora_forward (seed {fresh_seed})")


@pytest.mark.exercise(
    "lora_forward",
    points=0.5,
    hint="Check that A is (r, in_features) and B is (out_features, r) before computing.",
)
def test_lora_forward_bad_shapes(student):
    weight, x = torch.zeros(3, 4), torch.zeros(2, 4)
    for A, B in (
        (torch.zeros(2, 5), torch.zeros(3, 2)),
        (torch.zeros(2, 4), torch.zeros(3, 3)),
        (torch.zeros(2, 4), torch.zeros(4, 2)),
    ):
        with pytest.raises(ValueError):
            student.call("lora_forward", x, weight, None, A, B, 1.0)


# ------------------------------------------------------------------------------ merging
@pytest.mark.exercise(
    "lora_merge",
    points=1.5,
    hint="The update is (alpha / r) * B @ A, of the weight's shape (out_features, in_features).",
)
def test_lora_merge_random(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    layer, alpha = random_lora(g)
    weight = layer.base.weight.detach().clone()
    A, B = layer.lora_A.detach(), layer.lora_B.detach()
    layer.merge()
    got = student.call("lora_merge", weight, A, B, alpha)
    expect_tensor(
        got,
        layer.base.weight.detach(),
        rtol=1e-9,
        atol=1e-9,
        what=f"the merged weight (seed {fresh_seed})",
    )


@pytest.mark.exercise(
    "lora_merge",
    points=0.5,
    hint="With unmerge=True subtract the update; return a new tensor and leave weight as it was.",
)
def test_lora_merge_unmerge_and_no_change(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    layer, alpha = random_lora(g)
    merged = layer.base.weight.detach() + layer.delta_weight().detach()
    original = merged.clone()
    got = student.call(
        "lora_merge", merged, layer.lora_A.detach(), layer.lora_B.detach(), alpha, True
    )
    expect_tensor(got, layer.base.weight.detach(), rtol=1e-9, atol=1e-9, what="the unmerged weight")
    assert torch.equal(merged, original), "lora_merge changed its weight argument"


def random_tensor(g: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """Normal numbers of a random scale, with now and then an outlier and a block of zeros."""
    x = torch.randn(shape, generator=g) * float(torch.rand(1, generator=g) * 3 + 0.01)
    flat = x.view(-1)
    if float(torch.rand(1, generator=g)) < 0.5:
        flat[size(g, 0, flat.numel())] *= 30
    return x


def expect_codes(got, expected: torch.Tensor, ratio: torch.Tensor, what: str) -> None:
    """``got`` equals ``expected`` except, by one, where ``ratio`` (x over the scale) lies
    within a rounding error of a half step."""
    expect_type(got, torch.Tensor, what=what)
    if got.dtype != expected.dtype or got.shape != expected.shape:  # names dtype and shape
        expect_tensor(got, expected, what=what)
    ambiguous = ((ratio.abs() % 1) - 0.5).abs() < 1e-4
    difference = (got.long() - expected.long()).abs()
    wrong = (difference > 0) & ~ambiguous | (difference > 1)
    if wrong.any():
        index = int(wrong.view(-1).nonzero()[0])
        raise AssertionError(
            f"{what} differs at {int(wrong.sum())} of {got.numel()} positions; e.g. the "
            f"value at flat index {index} should have the code {int(expected.view(-1)[index])}, "
            f"got {int(got.view(-1)[index])}"
        )


# --------------------------------------------------------------------------- absmax
@pytest.mark.exercise(
    "absmax_quantize",
    points=1,
    hint="With 4 bits the codes go from -7 to 7: scale = max|x| / 7, codes = round(x / scale).",
)
def test_absmax_quantize_hand_example(student):
    codes, scale = student.call("absmax_quantize", torch.tensor([7.0, -3.5, 1.0, 0.2]), 4)
    expect_tensor(codes, torch.tensor([7, -4, 1, 0], dtype=torch.int8), what="the codes")
    expect_tensor(scale, torch.tensor(1.0), what="the scale")  # -3.5 rounds to the even -4


@pytest.mark.exercise(
    "absmax_quantize",
    points=1.5,
    hint="q = 2 ** (bits - 1) - 1; return the codes as torch.int8 and the scale as a 0-d "
    "float32 tensor; absmax_dequantize multiplies back.",
)
def test_absmax_quantize_random(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    bits = size(g, 2, 9)
    x = random_tensor(g, (size(g, 1, 6), size(g, 1, 30)))
    reference = absmax_quantize(x, bits)
    codes, scale = student.call("absmax_quantize", x, bits)
    expect_tensor(scale, reference.scale.view(()), rtol=1e-6, what=f"the scale (seed {fresh_seed})")
    expect_codes(
        codes,
        reference.codes.view(x.shape),
        x / reference.scale.view(()),
        f"the codes with {bits} bits (seed {fresh_seed})",
    )
    got = student.call("absmax_dequantize", codes, scale)
    expect_tensor(got, codes.float() * scale, rtol=1e-6, what="absmax_dequantize(codes, scale)")
    step = float(reference.scale)
    assert float((got - x).abs().max()) <= step / 2 * (1 + 1e-4), (
        "the dequantized values must be within half a step of x"
    )


@pytest.mark.exercise(
    "absmax_quantize",
    points=0.5,
    hint="A tensor of zeros gets the scale 1 (and codes 0); bits outside 2..8 raise ValueError.",
)
def test_absmax_quantize_zeros_and_bad_bits(student):
    codes, scale = student.call("absmax_quantize", torch.zeros(2, 3), 8)
    expect_tensor(codes, torch.zeros(2, 3, dtype=torch.int8), what="the codes of zeros")
    expect_tensor(scale, torch.tensor(1.0), what="the scale of zeros")
    for bits in (1, 9):
        with pytest.raises(ValueError):
            student.call("absmax_quantize", torch.ones(3), bits)


# ------------------------------------------------------------------------- block-wise
@pytest.mark.exercise(
    "blockwise_quantize",
    points=2,
    hint="x.reshape(-1, block_size): one row per block, one absmax scale per row (1 for a "
    "block of zeros); the codes as in exercise 3.",
)
def test_blockwise_quantize_random(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    block_size, n_blocks, bits = size(g, 1, 17), size(g, 1, 12), size(g, 2, 9)
    x = random_tensor(g, (n_blocks * block_size,))
    if n_blocks > 1 and fresh_seed % 3 == 0:
        x[:block_size] = 0.0  # a block of zeros
    x = x.view(n_blocks, block_size).T.contiguous() if fresh_seed % 2 else x.view(-1, block_size)
    reference = absmax_quantize(x, bits, block_size=block_size)
    codes, scales = student.call("blockwise_quantize", x, block_size, bits)
    what = f"(seed {fresh_seed}, blocks of {block_size}, {bits} bits)"
    expect_tensor(scales, reference.scale.flatten(), rtol=1e-6, what=f"the scales {what}")
    ratio = x.reshape(-1, block_size) / reference.scale
    expect_codes(codes, reference.codes, ratio, f"the codes {what}")
    got = student.call("blockwise_dequantize", codes, scales, tuple(x.shape))
    expected = (codes.float() * scales[:, None]).reshape(x.shape)
    expect_tensor(got, expected, rtol=1e-6, what="blockwise_dequantize(codes, scales, shape)")


@pytest.mark.exercise(
    "blockwise_quantize",
    points=0.5,
    hint="An outlier sets the scale of its own block only.",
)
def test_blockwise_quantize_hand_example(student):
    x = torch.tensor([0.1, -0.7, 0.0, 0.33, 70.0, 1.0, -7.0, 0.0])
    codes, scales = student.call("blockwise_quantize", x, 4, 4)
    expect_tensor(scales, torch.tensor([0.1, 10.0]), rtol=1e-6, what="the scales")
    expect_tensor(
        codes, torch.tensor([[1, -7, 0, 3], [7, 0, -1, 0]], dtype=torch.int8), what="the codes"
    )


@pytest.mark.exercise(
    "blockwise_quantize",
    points=0.5,
    hint="Raise ValueError when x.numel() % block_size != 0.",
)
def test_blockwise_quantize_block_size_must_divide(student):
    with pytest.raises(ValueError):
        student.call("blockwise_quantize", torch.randn(10), 4, 4)


# ----------------------------------------------------------------------- pruning mask
@pytest.mark.exercise(
    "magnitude_mask",
    points=1.5,
    hint="Sort |w| (flattened), set the first round(sparsity * n) positions to False, and "
    "reshape to the weight's shape.",
)
def test_magnitude_mask_random(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    weight = torch.randn(size(g, 1, 20), size(g, 1, 20), generator=g)
    for sparsity in (0.0, round(float(torch.rand(1, generator=g)) * 0.98, 3), 0.5):
        expected = magnitude_mask(weight, sparsity)
        got = student.call("magnitude_mask", weight, sparsity)
        expect_tensor(got, expected, what=f"magnitude_mask(w, {sparsity}) (seed {fresh_seed})")


@pytest.mark.exercise(
    "magnitude_mask",
    points=0.5,
    hint="Raise ValueError for a sparsity below 0 or of 1 and more.",
)
def test_magnitude_mask_bad_sparsity(student):
    for sparsity in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError):
            student.call("magnitude_mask", torch.randn(3, 3), sparsity)


# ------------------------------------------------------------------- distillation loss
@pytest.mark.exercise(
    "distillation_loss",
    points=1,
    hint="At T = 1 it is sum_i p_T,i (log p_T,i - log p_S,i), the KL divergence.",
)
def test_distillation_loss_seed_example(student):
    teacher, student_logits = (
        torch.tensor([0.8, 0.1, 0.1]).log(),
        torch.tensor([0.7, 0.2, 0.1]).log(),
    )
    expected = 0.8 * math.log(0.8 / 0.7) + 0.1 * math.log(0.1 / 0.2)
    got = student.call("distillation_loss", student_logits, teacher, 1.0)
    expect_tensor(got, torch.tensor(expected), rtol=1e-5, what="the loss of the example")


@pytest.mark.exercise(
    "distillation_loss",
    points=2,
    hint="Divide both logits by T before the (log-)softmax, sum over the last dimension, "
    "average over all the others, and multiply by T ** 2.",
)
def test_distillation_loss_random(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    lead = [size(g, 1, 4) for _ in range(size(g, 0, 3))]
    vocab = size(g, 2, 30)
    logits_s = torch.randn(*lead, vocab, generator=g, dtype=torch.float64) * 3
    logits_t = torch.randn(*lead, vocab, generator=g, dtype=torch.float64) * 3
    temperature = float(torch.rand(1, generator=g) * 5 + 0.2)
    expected = distillation_loss(logits_s, logits_t, temperature).double()
    got = student.call("distillation_loss", logits_s, logits_t, temperature)
    expect_type(got, torch.Tensor, what="the loss")
    assert got.ndim == 0, f"the loss must be a 0-d tensor, got shape {tuple(got.shape)}"
    expect_float(
        float(got),
        float(expected),
        rel=1e-5,
        abs=1e-7,
        what=f"the loss at T = {temperature:.3f} (seed {fresh_seed})",
    )
