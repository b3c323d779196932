"""Grading tests for the Chapter 4 exercises (solutions/ch04_seq2seq.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``: the points of a
parametrized test are shared by its cases, and an answer's points add up to those
announced in the notebook's heading. Inputs are random tensors of random sizes drawn
from the ``fresh_seed``, or translation pairs of the course's synthetic task; the
expected values come from ``llmcourse.classic.seq2seq`` (itself checked against
``torch.nn.functional.scaled_dot_product_attention``), from
``llmcourse.data.translation.make_batch``, or from a computation written out in the test.
"""

from __future__ import annotations

import pytest
import torch

from llmcourse.classic import BilinearAttention, DotAttention, masked_softmax
from llmcourse.data.translation import make_batch, source_vocab, target_vocab, translation_pairs
from llmcourse.grading.expect import expect_tensor

NOTEBOOK = "ch04_seq2seq"

# What each answer must write itself (see llmcourse.grading.offlimits), besides the
# package's functions named like the answers.
OFF_LIMITS = {
    "dot_scores": ["llmcourse.classic.seq2seq.DotAttention"],
    "bilinear_scores": ["llmcourse.classic.seq2seq.BilinearAttention"],
}
DTYPES = [torch.float32, torch.float64]
TOLERANCE = {torch.float32: {"rtol": 1e-5, "atol": 1e-5}, torch.float64: {"rtol": 1e-10}}


def draw(seed: int, dtype: torch.dtype = torch.float32):
    """Random sizes and a batch of decoder and encoder states (and a mask) from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    batch, src_len, d = (int(torch.randint(1, hi, (1,), generator=g)) for hi in (6, 9, 8))
    dec_state = torch.randn(batch, d, generator=g, dtype=dtype)
    enc_states = torch.randn(batch, src_len, d, generator=g, dtype=dtype)
    lengths = torch.randint(1, src_len + 1, (batch, 1), generator=g)
    mask = torch.arange(src_len) < lengths  # right padding, at least one real token
    return g, dec_state, enc_states, mask


# ----------------------------------------------------------------------- dot_scores
@pytest.mark.exercise(
    "dot_scores",
    points=0.5,
    hint="score[b, j] is the dot product of dec_state[b] with enc_states[b, j].",
)
def test_dot_scores_hand_example(student):
    enc_states = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    got = student.call("dot_scores", torch.tensor([[1.0, 2.0]]), enc_states)
    expect_tensor(got, torch.tensor([[1.0, 2.0, 3.0]]), what="dot_scores(...)")


@pytest.mark.exercise(
    "dot_scores",
    points=1,
    hint="Use torch.einsum('bd,bsd->bs', ...) or torch.bmm; keep the inputs' dtype.",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dot_scores_matches_reference(student, fresh_seed, dtype):
    _, dec_state, enc_states, _ = draw(fresh_seed, dtype)
    got = student.call("dot_scores", dec_state, enc_states)
    expected = DotAttention().score(dec_state, enc_states)
    expect_tensor(got, expected, **TOLERANCE[dtype], what=f"dot_scores (seed {fresh_seed})")


@pytest.mark.exercise(
    "dot_scores",
    points=0.5,
    hint="Check ndim, the batch sizes and the state sizes, and raise ValueError.",
)
@pytest.mark.parametrize(
    ("dec_shape", "enc_shape"), [((2, 3), (2, 4, 5)), ((2, 3), (3, 4, 3)), ((2, 3, 1), (2, 4, 3))]
)
def test_dot_scores_rejects_shapes_that_do_not_fit(student, dec_shape, enc_shape):
    with pytest.raises(ValueError):
        student.call("dot_scores", torch.zeros(dec_shape), torch.zeros(enc_shape))


# ------------------------------------------------------------------- masked_softmax
@pytest.mark.exercise(
    "masked_softmax",
    points=1,
    hint="Set the masked scores to -inf (scores.masked_fill(~mask, float('-inf'))) "
    "before a numerically stable softmax such as torch.softmax.",
)
def test_masked_softmax_hand_example_with_large_scores(student):
    scores = torch.tensor([[1000.0, 0.0, 5.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[True, True, False], [True, False, True], [True, True, True]])
    got = student.call("masked_softmax", scores, mask)
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5], scores[2].softmax(0).tolist()])
    expect_tensor(got, expected, rtol=1e-6, atol=1e-7, what="masked_softmax(...)")


@pytest.mark.exercise(
    "masked_softmax",
    points=1,
    hint="Masked positions must be exactly 0 and the others sum to 1 in every row.",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_softmax_matches_reference(student, fresh_seed, dtype):
    g = torch.Generator().manual_seed(fresh_seed)
    scores = 10 * torch.randn(7, 9, generator=g, dtype=dtype)
    mask = torch.rand(7, 9, generator=g) < 0.5  # any pattern, not only right padding
    mask[torch.arange(7), torch.randint(0, 9, (7,), generator=g)] = True
    got = student.call("masked_softmax", scores, mask)
    expected = masked_softmax(scores, mask)
    expect_tensor(got, expected, **TOLERANCE[dtype], what=f"masked_softmax (seed {fresh_seed})")
    assert (got[~mask] == 0).all(), "masked positions must get weight exactly 0"


@pytest.mark.exercise(
    "masked_softmax",
    points=1,
    hint="Raise ValueError when the shapes differ or a row of the mask is all False.",
)
@pytest.mark.parametrize(
    "mask",
    [torch.ones(2, 4, dtype=torch.bool), torch.tensor([[True, False, True], [False] * 3])],
    ids=["shape", "empty-row"],
)
def test_masked_softmax_rejects_bad_masks(student, mask):
    with pytest.raises(ValueError):
        student.call("masked_softmax", torch.zeros(2, 3), mask)


# ------------------------------------------------------------------- context_vector
@pytest.mark.exercise(
    "context_vector",
    points=0.75,
    hint="c[b] = sum over j of weights[b, j] * enc_states[b, j]: "
    "torch.einsum('bs,bsd->bd', ...) or a broadcast product and .sum(dim=1).",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_context_vector_matches_reference(student, fresh_seed, dtype):
    g, dec_state, enc_states, mask = draw(fresh_seed, dtype)
    weights = torch.rand(mask.shape, generator=g, dtype=dtype)  # any weights, not only softmax
    got = student.call("context_vector", weights, enc_states)
    batch, src_len, d = enc_states.shape
    expected = torch.zeros(batch, d, dtype=dtype)
    for b in range(batch):
        for j in range(src_len):
            expected[b] += weights[b, j] * enc_states[b, j]
    expect_tensor(got, expected, **TOLERANCE[dtype], what=f"context_vector (seed {fresh_seed})")
    # with the attention weights, it is the context of llmcourse's DotAttention
    weights = masked_softmax(DotAttention().score(dec_state, enc_states), mask)
    context, _ = DotAttention()(dec_state, enc_states, mask)
    got = student.call("context_vector", weights, enc_states)
    expect_tensor(got, context, **TOLERANCE[dtype], what="the context of DotAttention")


@pytest.mark.exercise(
    "context_vector",
    points=0.25,
    hint="weights must be (batch, src_len) and enc_states (batch, src_len, d).",
)
def test_context_vector_rejects_shapes_that_do_not_fit(student):
    with pytest.raises(ValueError):
        student.call("context_vector", torch.zeros(2, 3), torch.zeros(2, 4, 5))


# ------------------------------------------------------------------ bilinear_scores
@pytest.mark.exercise(
    "bilinear_scores",
    points=0.5,
    hint="With W = I the bilinear score is the dot product.",
)
def test_bilinear_scores_with_the_identity_are_dot_scores(student, fresh_seed):
    _, dec_state, enc_states, _ = draw(fresh_seed)
    got = student.call("bilinear_scores", dec_state, enc_states, torch.eye(dec_state.shape[1]))
    expect_tensor(got, DotAttention().score(dec_state, enc_states), rtol=1e-5, atol=1e-5)


@pytest.mark.exercise(
    "bilinear_scores",
    points=1,
    hint="score[b, j] = dec_state[b] @ W @ enc_states[b, j]; W has shape (d_dec, d_enc), "
    "and the two sizes may differ.",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bilinear_scores_match_reference(student, fresh_seed, dtype):
    g, _, enc_states, _ = draw(fresh_seed, dtype)
    d_dec = int(torch.randint(1, 8, (1,), generator=g))
    dec_state = torch.randn(enc_states.shape[0], d_dec, generator=g, dtype=dtype)
    attention = BilinearAttention(d_dec, enc_states.shape[2]).to(dtype)
    with torch.no_grad():
        attention.weight.copy_(torch.randn(attention.weight.shape, generator=g, dtype=dtype))
    W = attention.weight.detach().clone()
    got = student.call("bilinear_scores", dec_state, enc_states, W)
    expected = attention.score(dec_state, enc_states).detach()
    expect_tensor(got, expected, **TOLERANCE[dtype], what=f"bilinear_scores (seed {fresh_seed})")


@pytest.mark.exercise(
    "bilinear_scores",
    points=0.5,
    hint="W must have shape (d_dec, d_enc), and the batch sizes must agree; raise ValueError.",
)
@pytest.mark.parametrize(
    ("dec_shape", "enc_shape", "w_shape"),
    [((2, 3), (2, 4, 5), (5, 3)), ((2, 3), (3, 4, 5), (3, 5)), ((2, 3), (2, 4, 5), (3,))],
)
def test_bilinear_scores_rejects_shapes_that_do_not_fit(student, dec_shape, enc_shape, w_shape):
    with pytest.raises(ValueError):
        student.call(
            "bilinear_scores", torch.zeros(dec_shape), torch.zeros(enc_shape), torch.zeros(w_shape)
        )


# ------------------------------------------------------------ teacher_forcing_inputs
@pytest.mark.exercise(
    "teacher_forcing_inputs",
    points=0.5,
    hint="Put bos_id first, then targets[:, :-1] with eos_id replaced by pad_id.",
)
def test_teacher_forcing_inputs_hand_example(student):
    targets = torch.tensor([[10, 11, 12, 13, 3, 0], [20, 21, 3, 0, 0, 0], [30, 31, 32, 33, 34, 3]])
    got = student.call("teacher_forcing_inputs", targets, 2, 3, 0)
    expected = torch.tensor([[2, 10, 11, 12, 13, 0], [2, 20, 21, 0, 0, 0], [2, 30, 31, 32, 33, 34]])
    expect_tensor(got, expected, what="teacher_forcing_inputs(...)")


@pytest.mark.exercise(
    "teacher_forcing_inputs",
    points=1,
    hint="The result has the same shape and dtype (torch.long) as targets.",
)
def test_teacher_forcing_inputs_match_the_translation_batches(student, fresh_seed):
    src_vocab, tgt_vocab = source_vocab(), target_vocab()
    batch = make_batch(translation_pairs(8, seed=fresh_seed), src_vocab, tgt_vocab)
    ids = [tgt_vocab.stoi[t] for t in ("<s>", "</s>", "<pad>")]
    got = student.call("teacher_forcing_inputs", batch.tgt_out, *ids)
    expect_tensor(got, batch.tgt_in, what=f"the decoder inputs (pairs of seed {fresh_seed})")


@pytest.mark.exercise(
    "teacher_forcing_inputs",
    points=0.25,
    hint="Use the ids you are given; do not assume <pad> is 0 or <s> is 2.",
)
def test_teacher_forcing_inputs_with_other_ids(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    targets = torch.randint(10, 50, (4, 7), generator=g)
    targets[0, 3], targets[0, 4:] = 9, -1  # </s> = 9, <pad> = -1
    targets[1, 6] = 9
    got = student.call("teacher_forcing_inputs", targets, 7, 9, -1)
    expected = torch.cat([torch.full((4, 1), 7), targets[:, :-1]], dim=1)
    expected[0, 4:] = -1
    expect_tensor(got, expected, what=f"teacher_forcing_inputs (seed {fresh_seed})")


@pytest.mark.exercise(
    "teacher_forcing_inputs",
    points=0.25,
    hint="Raise ValueError unless targets is 2-D with at least one column.",
)
@pytest.mark.parametrize("shape", [(5,), (2, 0), (2, 3, 4)])
def test_teacher_forcing_inputs_rejects_bad_shapes(student, shape):
    with pytest.raises(ValueError):
        student.call("teacher_forcing_inputs", torch.zeros(shape, dtype=torch.long), 2, 3, 0)
