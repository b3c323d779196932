"""Grading tests for the Chapter 2 exercises (solutions/ch02_neural_lm.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``: the points of
a parametrized test are shared by its cases, and an answer's points add up to those
announced in the notebook's heading. Inputs are random ids, sizes and vectors drawn
from the ``fresh_seed``; the expected values come from ``llmcourse.classic.neural_lm`` and
``llmcourse.classic.word2vec`` (whose forward passes and losses are checked against hand
computations in the package's tests), from ``F.cosine_similarity``, or from formulas
written out here.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmcourse.classic import FixedWindowLM, SkipGram, windows
from llmcourse.classic import skipgram_pairs as reference_pairs
from llmcourse.grading.expect import expect_tensor, expect_type

NOTEBOOK = "ch02_neural_lm"

# What each answer must write itself (see llmcourse.grading.offlimits), besides the
# package's functions named like the answers.
OFF_LIMITS = {
    "context_windows": ["llmcourse.classic.neural_lm.windows"],
    "fixed_window_logits": ["llmcourse.classic.neural_lm.FixedWindowLM"],
    "negative_sampling_loss": ["llmcourse.classic.word2vec.SkipGram"],
    "cosine_similarity_matrix": ["torch.nn.functional.cosine_similarity"],
}
F32 = {"rtol": 1e-5, "atol": 1e-6}  # float32 sums in another order differ by ~1e-7


def randint(g: torch.Generator, low: int, high: int) -> int:
    """A random integer in [low, high)."""
    return int(torch.randint(low, high, (1,), generator=g))


def random_sentence(g: torch.Generator, vocab_size: int = 50, max_length: int = 12) -> list[int]:
    return torch.randint(3, vocab_size, (randint(g, 1, max_length),), generator=g).tolist()


# ------------------------------------------------------------------ context_windows
@pytest.mark.exercise(
    "context_windows",
    points=0.5,
    hint="Pad with `window` copies of bos_id on the left and one eos_id on the right; "
    "every word and the end are targets.",
)
def test_context_windows_hand_example(student):
    contexts, targets = student.call("context_windows", [5, 6], 2, 1, 2)
    expect_tensor(contexts, torch.tensor([[1, 1], [1, 5], [5, 6]]), what="contexts")
    expect_tensor(targets, torch.tensor([5, 6, 2]), what="targets")


@pytest.mark.exercise(
    "context_windows",
    points=1,
    hint="Row t of contexts holds the `window` ids just before target t in the padded "
    "sentence, oldest first; both tensors are torch.long.",
)
@pytest.mark.parametrize("window", [1, 3, 5])
def test_context_windows_match_reference(student, fresh_seed, window):
    g = torch.Generator().manual_seed(fresh_seed)
    sentence = random_sentence(g)
    bos, eos = 1, 2
    expected_contexts, expected_targets = windows([sentence], window, bos, eos)
    got = student.call("context_windows", sentence, window, bos, eos)
    expect_type(got, tuple, list, what="context_windows(...)")
    assert len(got) == 2, "return (contexts, targets)"
    expect_tensor(got[0], expected_contexts, what=f"contexts (seed {fresh_seed})")
    expect_tensor(got[1], expected_targets, what=f"targets (seed {fresh_seed})")


@pytest.mark.exercise(
    "context_windows",
    points=0.5,
    hint="An empty sentence still has one example (predicting </s>); a window below 1 is "
    "a ValueError.",
)
def test_context_windows_edge_cases(student):
    contexts, targets = student.call("context_windows", [], 3, 0, 9)
    expect_tensor(contexts, torch.tensor([[0, 0, 0]]), what="contexts of an empty sentence")
    expect_tensor(targets, torch.tensor([9]), what="targets of an empty sentence")
    for bad in (0, -1):
        with pytest.raises(ValueError):
            student.call("context_windows", [4, 5], bad, 0, 1)


# -------------------------------------------------------------- fixed_window_logits
def random_window_model(g: torch.Generator) -> tuple[FixedWindowLM, torch.Tensor]:
    """An llmcourse model with random sizes and weights, and a batch of contexts for it."""
    vocab_size, window = randint(g, 2, 30), randint(g, 1, 6)
    embed_dim, hidden_dim = randint(g, 1, 9), randint(g, 1, 17)
    model = FixedWindowLM(vocab_size, window, embed_dim, hidden_dim)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    context = torch.randint(vocab_size, (randint(g, 1, 8), window), generator=g)
    return model, context


def weights(model: FixedWindowLM) -> list[torch.Tensor]:
    """E, W, b1, U, b2 of a FixedWindowLM, detached."""
    return [
        p.detach().clone()
        for p in (
            model.embedding.weight,
            model.hidden.weight,
            model.hidden.bias,
            model.output.weight,
            model.output.bias,
        )
    ]


@pytest.mark.exercise(
    "fixed_window_logits",
    points=1,
    hint="logits = tanh(e @ W.T + b1) @ U.T + b2, where e concatenates the rows of E "
    "of the context ids, oldest word first.",
)
def test_fixed_window_logits_by_hand(student):
    # V = 3, d = 1, window 2, hidden 1: E = [[1], [2], [3]], so e = [E_2; E_0] = [3, 1]
    E = torch.tensor([[1.0], [2.0], [3.0]])
    W, b1 = torch.tensor([[0.5, -1.0]]), torch.tensor([0.25])  # W e + b1 = 0.75
    U, b2 = torch.tensor([[1.0], [0.0], [-2.0]]), torch.tensor([0.0, 1.0, 0.0])
    t = math.tanh(0.75)
    got = student.call("fixed_window_logits", torch.tensor([[2, 0]]), E, W, b1, U, b2)
    expect_tensor(got, torch.tensor([[t, 1.0, -2 * t]]), **F32, what="logits")


@pytest.mark.exercise(
    "fixed_window_logits",
    points=1.5,
    hint="Check the shapes: e is (batch, window * d), h is (batch, hidden), the logits "
    "(batch, V); do not apply a softmax.",
)
@pytest.mark.parametrize("case", range(3))
def test_fixed_window_logits_match_reference(student, fresh_seed, case):
    g = torch.Generator().manual_seed(fresh_seed + case)
    model, context = random_window_model(g)
    with torch.no_grad():
        expected = model(context)
    got = student.call("fixed_window_logits", context, *weights(model))
    expect_tensor(got, expected, **F32, what=f"fixed_window_logits (seed {fresh_seed + case})")


@pytest.mark.exercise(
    "fixed_window_logits",
    points=0.5,
    hint="Raise ValueError when context_ids is not 2-D or W does not have window * d columns.",
)
def test_fixed_window_logits_rejects_bad_shapes(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    model = FixedWindowLM(10, 3, 4, 5)
    E, W, b1, U, b2 = weights(model)
    context = torch.randint(10, (2, 3), generator=g)
    with pytest.raises(ValueError):
        student.call("fixed_window_logits", context[:, :2], E, W, b1, U, b2)  # 2 words, 12 cols
    with pytest.raises(ValueError):
        student.call("fixed_window_logits", context[0], E, W, b1, U, b2)  # 1-D
    with pytest.raises(ValueError):
        student.call("fixed_window_logits", context, E, W[:, :8], b1, U, b2)


# ------------------------------------------------------------------- skipgram_pairs
@pytest.mark.exercise(
    "skipgram_pairs",
    points=0.5,
    hint="For each position t, offsets j = -window..-1 then 1..window, skipping those "
    "outside the sentence; no padding.",
)
def test_skipgram_pairs_hand_examples(student):
    got = student.call("skipgram_pairs", [7, 8, 9], 1)
    expect_type(got, list, what="skipgram_pairs([7, 8, 9], 1)")
    assert got == [(7, 8), (8, 7), (8, 9), (9, 8)]
    assert student.call("skipgram_pairs", [7, 8, 9], 2) == [
        (7, 8),
        (7, 9),
        (8, 7),
        (8, 9),
        (9, 7),
        (9, 8),
    ]


@pytest.mark.exercise(
    "skipgram_pairs",
    points=1,
    hint="Return a list of (center, context) tuples of ints, ordered by position and "
    "then by offset.",
)
@pytest.mark.parametrize("window", [1, 2, 4])
def test_skipgram_pairs_match_reference(student, fresh_seed, window):
    g = torch.Generator().manual_seed(fresh_seed)
    sentence = random_sentence(g, max_length=15)
    centers, contexts = reference_pairs([sentence], window)
    expected = list(zip(centers.tolist(), contexts.tolist(), strict=True))
    got = student.call("skipgram_pairs", sentence, window)
    expect_type(got, list, what="skipgram_pairs(...)")
    assert got == expected, f"sentence {sentence}, window {window}"


@pytest.mark.exercise(
    "skipgram_pairs",
    points=0.5,
    hint="A sentence of zero or one word has no pairs; a window below 1 is a ValueError.",
)
def test_skipgram_pairs_edge_cases(student):
    assert student.call("skipgram_pairs", [], 2) == []
    assert student.call("skipgram_pairs", [4], 3) == []
    for bad in (0, -2):
        with pytest.raises(ValueError):
            student.call("skipgram_pairs", [1, 2, 3], bad)


# ----------------------------------------------------------- negative_sampling_loss
def random_vectors(g: torch.Generator, scale: float = 1.0):
    batch, k, d = randint(g, 1, 8), randint(g, 1, 6), randint(g, 1, 10)
    v_c = scale * torch.randn(batch, d, generator=g)
    u_o = scale * torch.randn(batch, d, generator=g)
    u_neg = scale * torch.randn(batch, k, d, generator=g)
    return v_c, u_o, u_neg


def formula(v_c: torch.Tensor, u_o: torch.Tensor, u_neg: torch.Tensor) -> torch.Tensor:
    """The loss written out in float64 with log(1 / (1 + exp(-x))), for moderate scores."""
    v, uo, un = v_c.double(), u_o.double(), u_neg.double()
    positive = (uo * v).sum(-1)
    negative = torch.einsum("bkd,bd->bk", un, v)
    loss = torch.log(1 + torch.exp(-positive)) + torch.log(1 + torch.exp(negative)).sum(-1)
    return loss.mean()


@pytest.mark.exercise(
    "negative_sampling_loss",
    points=0.5,
    hint="-log sigmoid(u_o . v_c) - sum_i log sigmoid(-u_neg_i . v_c), averaged over the batch.",
)
def test_negative_sampling_loss_hand_example(student):
    v_c, u_o = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])
    u_neg = torch.tensor([[[-1.0, 0.0], [0.0, 5.0]]])  # dot products -1 and 0
    expected = math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1)) + math.log(2)
    got = student.call("negative_sampling_loss", v_c, u_o, u_neg)
    expect_tensor(got, torch.tensor(expected), **F32, what="the loss")


@pytest.mark.exercise(
    "negative_sampling_loss",
    points=1.5,
    hint="Return the mean over the batch as a 0-dimensional tensor; u_neg is (batch, k, d).",
)
@pytest.mark.parametrize("case", range(3))
def test_negative_sampling_loss_matches_reference(student, fresh_seed, case):
    g = torch.Generator().manual_seed(fresh_seed + case)
    v_c, u_o, u_neg = random_vectors(g)
    batch, k, d = u_neg.shape
    # the same vectors as rows of an llmcourse SkipGram's two embedding tables
    model = SkipGram(batch * (k + 2), d)
    with torch.no_grad():
        model.center.weight[:batch] = v_c
        model.context.weight[:batch] = u_o
        model.context.weight[batch : batch * (k + 1)] = u_neg.reshape(batch * k, d)
        expected = model.negative_sampling_loss(
            torch.arange(batch),
            torch.arange(batch),
            torch.arange(batch, batch * (k + 1)).view(batch, k),
        )
    got = student.call("negative_sampling_loss", v_c, u_o, u_neg)
    expect_tensor(got, expected, **F32, what=f"the loss (seed {fresh_seed + case})")
    assert got.item() == pytest.approx(formula(v_c, u_o, u_neg).item(), rel=1e-5)


@pytest.mark.exercise(
    "negative_sampling_loss",
    points=0.5,
    hint="log(sigmoid(x)) underflows for large |x|: use F.logsigmoid.",
)
def test_negative_sampling_loss_is_finite_for_large_scores(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    v_c, u_o, u_neg = random_vectors(g, scale=12.0)  # dot products in the hundreds
    positive = (u_o * v_c).sum(-1)
    negative = torch.einsum("bkd,bd->bk", u_neg, v_c)
    expected = -(F.logsigmoid(positive.double()) + F.logsigmoid(-negative.double()).sum(-1))
    got = student.call("negative_sampling_loss", v_c, u_o, u_neg)
    expect_tensor(got, expected.mean().float(), rtol=1e-4, atol=1e-4, what="the loss")


@pytest.mark.exercise(
    "negative_sampling_loss",
    points=0.5,
    hint="v_c and u_o must both be (batch, d), u_neg (batch, k, d); raise ValueError otherwise.",
)
def test_negative_sampling_loss_rejects_bad_shapes(student):
    v_c, u_o, u_neg = torch.ones(3, 4), torch.ones(3, 4), torch.ones(3, 2, 4)
    for args in (
        (v_c, u_o[:2], u_neg),  # batch sizes differ
        (v_c, u_o[:, :3], u_neg),  # dimensions differ
        (v_c, u_o, u_neg[0]),  # u_neg is 2-D
        (v_c, u_o, u_neg[:, :, :3]),  # u_neg has another d
        (v_c[0], u_o[0], u_neg[0]),  # one pair without a batch dimension
    ):
        with pytest.raises(ValueError):
            student.call("negative_sampling_loss", *args)


# --------------------------------------------------------- cosine_similarity_matrix
@pytest.mark.exercise(
    "cosine_similarity_matrix",
    points=1,
    hint="Normalise every row to length 1, then take all dot products: (V, d) -> (V, V).",
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cosine_similarity_matrix_matches_torch(student, fresh_seed, dtype):
    g = torch.Generator().manual_seed(fresh_seed)
    E = torch.randn(randint(g, 1, 20), randint(g, 1, 10), generator=g, dtype=dtype)
    E = E * torch.rand(len(E), 1, generator=g, dtype=dtype).add(0.1) * 10  # various lengths
    expected = F.cosine_similarity(E[:, None, :], E[None, :, :], dim=-1)
    got = student.call("cosine_similarity_matrix", E)
    tolerance = F32 if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    expect_tensor(got, expected, **tolerance, what=f"similarities (seed {fresh_seed})")


@pytest.mark.exercise(
    "cosine_similarity_matrix",
    points=0.5,
    hint="A zero row must give 0 (not nan) against every row, itself included.",
)
def test_cosine_similarity_matrix_zero_rows(student):
    E = torch.tensor([[3.0, 4.0], [0.0, 0.0], [-6.0, -8.0]])
    expected = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 1.0]])
    expect_tensor(student.call("cosine_similarity_matrix", E), expected, **F32)


@pytest.mark.exercise(
    "cosine_similarity_matrix", points=0.5, hint="Raise ValueError if E is not 2-D."
)
def test_cosine_similarity_matrix_rejects_other_shapes(student):
    for bad in (torch.ones(3), torch.ones(2, 3, 4)):
        with pytest.raises(ValueError):
            student.call("cosine_similarity_matrix", bad)
