"""Grading tests for the Chapter 9 exercises (solutions/ch09_pretraining.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``: the points of a
parametrized test are shared by its cases, and an answer's points add up to those
announced in the notebook's heading. Inputs are random, drawn from the ``fresh_seed``;
the expected values come from ``llmcourse.training.objectives`` (masking, span corruption),
``llmcourse.models.heads`` (subword labels, pooling) and ``llmcourse.training.schedule`` (the
learning rate), each tested on its own, or from hand computations written out here.
"""

from __future__ import annotations

import pytest
import torch

from llmcourse.grading.expect import expect_float, expect_tensor, expect_type
from llmcourse.models import align_labels_to_subwords, pool_hidden
from llmcourse.training import apply_masking, corrupt_spans, lr_at

NOTEBOOK = "ch09_pretraining"

# What each answer must write itself (see llmcourse.grading.offlimits), besides the
# package's functions named like the answers.
OFF_LIMITS = {
    "mask_with_draws": [
        "llmcourse.training.objectives.apply_masking",
        "llmcourse.training.objectives.mask_tokens",
    ],
    "corrupt_spans": ["llmcourse.training.objectives.span_corruption"],
    "align_labels": ["llmcourse.models.heads.align_labels_to_subwords"],
    "pool": ["llmcourse.models.heads.pool_hidden"],
    "cosine_lr": ["llmcourse.training.schedule.lr_at"],
}


def size(g: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high, (1,), generator=g))


# --------------------------------------------------------------------------- masking
@pytest.mark.exercise(
    "mask_with_draws",
    points=1,
    hint="selected = (select_u < p) & the token is not special; the mask goes where "
    "action_u < 0.8, the replacement where 0.8 <= action_u < 0.9.",
)
def test_mask_with_draws_hand_example(student):
    ids = torch.tensor([[5, 6, 7], [8, 0, 9]])
    select_u = torch.tensor([[0.1, 0.5, 0.05], [0.12, 0.01, 0.149]])
    action_u = torch.tensor([[0.3, 0.3, 0.85], [0.95, 0.1, 0.8]])
    replacement = torch.tensor([[11, 12, 13], [14, 15, 16]])
    inputs, labels = student.call("mask_with_draws", ids, select_u, action_u, replacement, 1, [0])
    expect_tensor(inputs, torch.tensor([[1, 6, 13], [8, 0, 16]]), what="the inputs")
    expect_tensor(labels, torch.tensor([[5, -100, 7], [8, -100, 9]]), what="the labels")


@pytest.mark.exercise(
    "mask_with_draws",
    points=2,
    hint="Labels are the original ids where selected and -100 elsewhere; special tokens are "
    "never selected, whatever select_u says. Work on copies: do not change ids.",
)
def test_mask_with_draws_random(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    shape = (size(g, 1, 5), size(g, 1, 40))
    vocab = size(g, 6, 50)
    ids = torch.randint(0, vocab, shape, generator=g)
    specials = sorted(set(torch.randint(0, vocab, (3,), generator=g).tolist()))
    mask_id, p = specials[0], float(torch.rand(1, generator=g)) * 0.6
    select_u, action_u = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    replacement = torch.randint(0, vocab, shape, generator=g)
    original = ids.clone()
    inputs, labels = student.call(
        "mask_with_draws", ids, select_u, action_u, replacement, mask_id, specials, p
    )
    selected = (select_u < p) & ~torch.isin(ids, torch.tensor(specials))
    expected = apply_masking(ids, selected, action_u, replacement, mask_id)
    what = f"(seed {fresh_seed})"
    expect_tensor(inputs, expected[0], what=f"the inputs {what}")
    expect_tensor(labels, expected[1], what=f"the labels {what}")
    assert torch.equal(ids, original), "mask_with_draws changed its ids argument"


# -------------------------------------------------------------------- span corruption
@pytest.mark.exercise(
    "corrupt_spans",
    points=1,
    hint="Each run of True is one span: one sentinel in the inputs, the same sentinel then the "
    "span's tokens in the targets, which end with one more sentinel.",
)
def test_corrupt_spans_hand_example(student):
    inputs, targets = student.call(
        "corrupt_spans",
        [1, 2, 3, 4, 5, 6],
        [True, False, True, True, False, True],
        [90, 91, 92, 93],
    )
    expect_type(inputs, list, what="the inputs")
    assert inputs == [90, 2, 91, 5, 92], f"expected inputs [90, 2, 91, 5, 92], got {inputs}"
    assert targets == [90, 1, 91, 3, 4, 92, 6, 93], (
        f"expected targets [90, 1, 91, 3, 4, 92, 6, 93], got {targets}"
    )


@pytest.mark.exercise(
    "corrupt_spans",
    points=1.5,
    hint="Compare each position with the one before it to find where a span starts.",
)
def test_corrupt_spans_random(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    length = size(g, 1, 60)
    ids = torch.randint(0, 50, (length,), generator=g)
    noise = torch.rand(length, generator=g) < float(torch.rand(1, generator=g))
    sentinels = list(range(100, 100 + length + 1))
    expected = [t.tolist() for t in corrupt_spans(ids, noise, sentinels)]
    got = student.call("corrupt_spans", ids.tolist(), noise.tolist(), sentinels)
    assert list(got) == expected, f"seed {fresh_seed}: expected {expected}, got {got}"


@pytest.mark.exercise(
    "corrupt_spans", points=0.5, hint="n spans need n + 1 sentinels: raise ValueError otherwise."
)
def test_corrupt_spans_too_few_sentinels(student):
    with pytest.raises(ValueError):
        student.call("corrupt_spans", [1, 2, 3], [True, False, True], [90, 91])


# --------------------------------------------------------------------- subword labels
@pytest.mark.exercise(
    "align_labels",
    points=1.5,
    hint="A token gets its word's label only when the token before it belongs to another word; "
    "None tokens and the other tokens of a word get -100.",
)
def test_align_labels_random(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    n_words = size(g, 1, 12)
    word_labels = torch.randint(0, 7, (n_words,), generator=g).tolist()
    word_ids: list[int | None] = [None]
    for word in range(n_words):
        word_ids += [word] * size(g, 1, 4)
        if float(torch.rand(1, generator=g)) < 0.2:
            word_ids.append(None)
    expected = align_labels_to_subwords(word_labels, word_ids)
    got = student.call("align_labels", word_labels, word_ids)
    assert got == expected, f"seed {fresh_seed}: expected {expected}, got {got}"


@pytest.mark.exercise(
    "align_labels", points=0.5, hint="Raise ValueError for a word index outside word_labels."
)
def test_align_labels_bad_word_index(student):
    with pytest.raises(ValueError):
        student.call("align_labels", [1, 2], [0, 1, 2])


# -------------------------------------------------------------------------- pooling
@pytest.mark.exercise(
    "pool",
    points=2.5,
    hint="'last' is the last True of padding_mask in each row (its count of True minus 1); "
    "'mean' divides the sum over real tokens by their number.",
)
@pytest.mark.parametrize("how", ["first", "last", "mean"])
def test_pool_random(student, fresh_seed, how):
    g = torch.Generator().manual_seed(fresh_seed)
    batch, time, d = size(g, 1, 5), size(g, 1, 9), size(g, 1, 6)
    hidden = torch.randn(batch, time, d, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, time + 1, (batch,), generator=g)
    padding_mask = torch.arange(time)[None, :] < lengths[:, None]
    expected = pool_hidden(hidden, how, padding_mask)
    got = student.call("pool", hidden, how, padding_mask)
    expect_tensor(got, expected, rtol=1e-9, what=f"pool(..., {how!r}) (seed {fresh_seed})")
    got = student.call("pool", hidden, how, None)
    expect_tensor(got, pool_hidden(hidden, how), rtol=1e-9, what=f"pool(..., {how!r}, None)")


@pytest.mark.exercise("pool", points=0.5, hint="Raise ValueError for an unknown how.")
def test_pool_unknown(student):
    with pytest.raises(ValueError):
        student.call("pool", torch.zeros(1, 2, 3), "max", None)


# ------------------------------------------------------------------------- schedule
@pytest.mark.exercise(
    "cosine_lr",
    points=1.5,
    hint="During the warmup lr * step / warmup_steps; then min_lr + (lr - min_lr) * "
    "(1 + cos(pi * (step - W) / (steps - W))) / 2.",
)
def test_cosine_lr_random(student, fresh_seed):
    g = torch.Generator().manual_seed(fresh_seed)
    steps = size(g, 2, 200)
    warmup = size(g, 0, steps)
    lr = float(torch.rand(1, generator=g)) * 1e-2 + 1e-5
    min_lr = lr * float(torch.rand(1, generator=g))
    for step in sorted({1, warmup or 1, min(warmup + 1, steps), steps, size(g, 1, steps + 1)}):
        got = student.call("cosine_lr", step, lr, steps, warmup, min_lr)
        expected = lr_at(
            step, lr=lr, steps=steps, schedule="cosine", warmup_steps=warmup, min_lr=min_lr
        )
        expect_float(got, expected, rel=1e-9, abs=1e-15, what=f"cosine_lr({step}, ...)")


@pytest.mark.exercise(
    "cosine_lr", points=0.5, hint="Raise ValueError for a step outside [1, steps]."
)
def test_cosine_lr_bad_step(student):
    for step in (0, 11):
        with pytest.raises(ValueError):
            student.call("cosine_lr", step, 1e-3, 10, 2, 0.0)
