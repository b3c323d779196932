"""Grading tests for the Chapter 3 exercises (solutions/ch03_rnn.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``: the points of a
parametrized test are shared by its cases, and an answer's points add up to those
announced in the notebook's heading. Inputs are random tensors drawn from the
``fresh_seed``, with random sizes; the expected values come from PyTorch's own
``nn.RNNCell``, ``nn.RNN`` and ``nn.LSTMCell`` with the same weights copied in, from
``F.cross_entropy``, or from a computation written out in the test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.grading.expect import expect_tensor, expect_type

NOTEBOOK = "ch03_rnn"

# What each answer must write itself (see llmcourse.grading.offlimits), besides the
# package's functions named like the answers: the package's and torch's cells and layers;
# and the code standing in for rnn_step when rnn_forward is graded.
OFF_LIMITS = {
    "rnn_step": ["llmcourse.classic.rnn.RNNCell", "aten::rnn_tanh*", "aten::rnn_relu*"],
    "rnn_forward": ["llmcourse.classic.rnn.RNN", "aten::rnn_tanh*", "aten::rnn_relu*"],
    "lstm_cell": ["llmcourse.classic.rnn.LSTMCell", "aten::*lstm*"],
    "sequence_cross_entropy": [
        "torch.nn.functional.cross_entropy",
        "torch.nn.functional.nll_loss",
        "aten::cross_entropy_loss",
        "aten::nll_loss*",
    ],
}
STAND_INS = {
    "rnn_step": """
def rnn_step(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh"):
    pre = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)
"""
}
F32 = {"rtol": 1e-5, "atol": 1e-6}  # float32 sums in another order differ by ~1e-7
F64 = {"rtol": 1e-10, "atol": 1e-12}


SIZES = {"batch": (1, 6), "input": (1, 7), "hidden": (1, 8), "time": (1, 9)}


def draw(seed: int) -> tuple[torch.Generator, dict[str, int]]:
    """A generator and random sizes (batch, input, hidden, time) for one test case."""
    g = torch.Generator().manual_seed(seed)
    sizes = {k: int(torch.randint(lo, hi, (1,), generator=g)) for k, (lo, hi) in SIZES.items()}
    return g, sizes


def weights(module: nn.Module) -> list[torch.Tensor]:
    """(w_ih, w_hh, b_ih, b_hh) of a torch cell or one-layer RNN, detached."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    params = dict(module.named_parameters())
    suffix = "" if "weight_ih" in params else "_l0"
    return [params[name + suffix].detach().clone() for name in names]


def random_cell(cell_type, g, sizes, dtype, **options):
    """A torch cell with random weights drawn from ``g`` (not the global seed)."""
    cell = cell_type(sizes["input"], sizes["hidden"], **options).to(dtype)
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) / 2)
    return cell


# ------------------------------------------------------------------------ rnn_step
@pytest.mark.exercise(
    "rnn_step",
    points=1,
    hint="h' = f(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh), with f = torch.tanh or torch.relu.",
)
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_step_matches_torch_rnn_cell(student, fresh_seed, nonlinearity):
    g, sizes = draw(fresh_seed)
    cell = random_cell(nn.RNNCell, g, sizes, torch.float32, nonlinearity=nonlinearity)
    x = torch.randn(sizes["batch"], sizes["input"], generator=g)
    h = torch.randn(sizes["batch"], sizes["hidden"], generator=g)
    got = student.call("rnn_step", x, h, *weights(cell), nonlinearity)
    expect_tensor(got, cell(x, h).detach(), **F32, what=f"rnn_step (seed {fresh_seed})")


@pytest.mark.exercise("rnn_step", points=0.5, hint="Keep the dtype of the inputs.")
def test_rnn_step_default_is_tanh_and_keeps_float64(student, fresh_seed):
    g, sizes = draw(fresh_seed)
    cell = random_cell(nn.RNNCell, g, sizes, torch.float64)
    x = torch.randn(sizes["batch"], sizes["input"], generator=g, dtype=torch.float64)
    h = torch.randn(sizes["batch"], sizes["hidden"], generator=g, dtype=torch.float64)
    got = student.call("rnn_step", x, h, *weights(cell))
    expect_tensor(got, cell(x, h).detach(), **F64, what="rnn_step in float64")


@pytest.mark.exercise(
    "rnn_step",
    points=0.5,
    hint="Raise ValueError for a nonlinearity other than 'tanh' or 'relu', and when "
    "x.shape[-1] differs from w_ih.shape[1].",
)
@pytest.mark.parametrize("case", ["nonlinearity", "width"])
def test_rnn_step_rejects_bad_arguments(student, case):
    w_ih, w_hh, b_ih, b_hh = torch.ones(2, 3), torch.ones(2, 2), torch.zeros(2), torch.zeros(2)
    x = torch.ones(1, 4 if case == "width" else 3)
    with pytest.raises(ValueError):
        student.call(
            "rnn_step", x, torch.zeros(1, 2), w_ih, w_hh, b_ih, b_hh,
            "sigmoid" if case == "nonlinearity" else "tanh",
        )  # fmt: skip


# --------------------------------------------------------------------- rnn_forward
@pytest.mark.exercise(
    "rnn_forward",
    points=1.5,
    hint="Loop over xs (its first dimension is time), update h with rnn_step, collect "
    "every new h and torch.stack them; return (states, last h).",
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rnn_forward_matches_torch_rnn(student, fresh_seed, dtype):
    g, sizes = draw(fresh_seed)
    rnn = random_cell(nn.RNN, g, sizes, dtype)
    xs = torch.randn(sizes["time"], sizes["batch"], sizes["input"], generator=g, dtype=dtype)
    h0 = torch.randn(sizes["batch"], sizes["hidden"], generator=g, dtype=dtype)
    got = student.call("rnn_forward", xs, h0, *weights(rnn))
    expect_type(got, tuple, list, what="rnn_forward's result")
    assert len(got) == 2, "rnn_forward must return (states, h_last)"
    output, h_n = rnn(xs, h0[None])
    tol = F64 if dtype == torch.float64 else F32
    expect_tensor(got[0], output.detach(), **tol, what="the states")
    expect_tensor(got[1], h_n[0].detach(), **tol, what="the final state")


@pytest.mark.exercise("rnn_forward", points=0.5, hint="A sequence of one step has one state.")
def test_rnn_forward_single_step_is_one_rnn_step(student, fresh_seed):
    g, sizes = draw(fresh_seed)
    cell = random_cell(nn.RNNCell, g, sizes, torch.float32)
    x = torch.randn(1, sizes["batch"], sizes["input"], generator=g)
    h0 = torch.zeros(sizes["batch"], sizes["hidden"])
    states, h_last = student.call("rnn_forward", x, h0, *weights(cell))
    expected = cell(x[0], h0).detach()
    expect_tensor(states, expected[None], **F32, what="the states of a one-step sequence")
    expect_tensor(h_last, expected, **F32, what="the final state of a one-step sequence")


# ----------------------------------------------------------------------- lstm_cell
@pytest.mark.exercise(
    "lstm_cell",
    points=2,
    hint="Split z = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh into four blocks of `hidden` "
    "columns in the order i, f, g, o; c' = f * c + i * g and h' = o * tanh(c').",
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lstm_cell_matches_torch_lstm_cell(student, fresh_seed, dtype):
    g, sizes = draw(fresh_seed)
    cell = random_cell(nn.LSTMCell, g, sizes, dtype)
    x = torch.randn(sizes["batch"], sizes["input"], generator=g, dtype=dtype)
    h = torch.randn(sizes["batch"], sizes["hidden"], generator=g, dtype=dtype)
    c = torch.randn(sizes["batch"], sizes["hidden"], generator=g, dtype=dtype)
    got = student.call("lstm_cell", x, h, c, *weights(cell))
    expect_type(got, tuple, list, what="lstm_cell's result")
    assert len(got) == 2, "lstm_cell must return the pair (h, c)"
    h_ref, c_ref = (t.detach() for t in cell(x, (h, c)))
    tol = F64 if dtype == torch.float64 else F32
    expect_tensor(got[0], h_ref, **tol, what="the new h")
    expect_tensor(got[1], c_ref, **tol, what="the new c")


@pytest.mark.exercise(
    "lstm_cell",
    points=0.5,
    hint="PyTorch's gate order is i, f, g, o: the forget gate is the second block.",
)
def test_lstm_cell_gate_order_by_hand(student):
    # Only the second block (the forget gate) reads x, and it saturates to 1: the cell
    # keeps c, the other gates have z = 0, so i = o = 0.5 and g = 0.
    w_ih = torch.tensor([[0.0], [50.0], [0.0], [0.0]])
    zeros = torch.zeros(4)
    h, c = student.call(
        "lstm_cell", torch.ones(1, 1), torch.zeros(1, 1), torch.full((1, 1), 0.8),
        w_ih, torch.zeros(4, 1), zeros, zeros,
    )  # fmt: skip
    expect_tensor(c, torch.tensor([[0.8]]), **F32, what="c' when only the forget gate is open")
    expect_tensor(h, torch.tensor([[0.5 * math.tanh(0.8)]]), **F32, what="h' = o * tanh(c')")


@pytest.mark.exercise(
    "lstm_cell", points=0.5, hint="Raise ValueError unless w_ih has 4 * hidden rows."
)
def test_lstm_cell_rejects_weights_of_the_wrong_size(student):
    with pytest.raises(ValueError):
        student.call(
            "lstm_cell", torch.ones(1, 3), torch.zeros(1, 2), torch.zeros(1, 2),
            torch.ones(6, 3), torch.ones(6, 2), torch.zeros(6), torch.zeros(6),
        )  # fmt: skip


# ----------------------------------------------------------------------- mean_pool
@pytest.mark.exercise(
    "mean_pool",
    points=1.5,
    hint="Average only the first lengths[b] steps of sequence b: mask the padded steps "
    "out of the sum and divide by the length, not by the padded time.",
)
@pytest.mark.parametrize("as_list", [True, False])
def test_mean_pool_matches_a_loop(student, fresh_seed, as_list):
    g, sizes = draw(fresh_seed)
    steps = sizes["time"]
    outputs = torch.randn(sizes["batch"], steps, sizes["hidden"], generator=g)
    lengths = torch.randint(1, steps + 1, (sizes["batch"],), generator=g)
    outputs[0, int(lengths[0]) :] = 1e6  # padding that must not leak into the mean
    expected = torch.stack([outputs[b, :n].mean(dim=0) for b, n in enumerate(lengths.tolist())])
    got = student.call("mean_pool", outputs, lengths.tolist() if as_list else lengths)
    expect_tensor(got, expected, **F32, what=f"mean_pool (lengths {lengths.tolist()})")


@pytest.mark.exercise("mean_pool", points=0.5, hint="Raise ValueError for a length of 0 or > time.")
@pytest.mark.parametrize("lengths", [[0, 2], [2, 4]])
def test_mean_pool_rejects_bad_lengths(student, lengths):
    with pytest.raises(ValueError):
        student.call("mean_pool", torch.ones(2, 3, 2), lengths)


# --------------------------------------------------------- sequence_cross_entropy
@pytest.mark.exercise(
    "sequence_cross_entropy",
    points=1,
    hint="Take log_softmax over the last dimension, pick the target's entry at every "
    "position, and average minus those over the positions whose target is not pad_id.",
)
@pytest.mark.parametrize("pad_id", [-100, 0])
def test_sequence_cross_entropy_matches_torch(student, fresh_seed, pad_id):
    g, sizes = draw(fresh_seed)
    classes = sizes["hidden"] + 1
    logits = 5 * torch.randn(sizes["batch"], sizes["time"], classes, generator=g)
    targets = torch.randint(0, classes, (sizes["batch"], sizes["time"]), generator=g)
    padded = torch.rand(targets.shape, generator=g) < 0.3
    padded[0, 0] = False  # at least one real target
    targets[padded] = pad_id
    if pad_id == 0:  # class 0 is then padding everywhere, never a real target
        targets[~padded] = targets[~padded].clamp(min=1)
    expected = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=pad_id)
    got = student.call("sequence_cross_entropy", logits, targets, pad_id)
    expect_tensor(got, expected, **F32, what="the loss")


@pytest.mark.exercise(
    "sequence_cross_entropy", points=0.5, hint="Use torch.log_softmax: no overflow for big logits."
)
def test_sequence_cross_entropy_is_stable_for_large_logits(student):
    logits = torch.tensor([[[1000.0, 0.0], [0.0, 1000.0]]])
    got = student.call("sequence_cross_entropy", logits, torch.tensor([[1, 1]]), -1)
    expect_tensor(got, torch.tensor(500.0), **F32, what="the loss with logits of 1000")


@pytest.mark.exercise(
    "sequence_cross_entropy",
    points=0.5,
    hint="Raise ValueError when targets' shape is not logits.shape[:2] or every target is pad_id.",
)
@pytest.mark.parametrize("case", ["shape", "all padding"])
def test_sequence_cross_entropy_rejects_bad_targets(student, case):
    targets = torch.tensor([[0, 1, 1]]) if case == "shape" else torch.tensor([[-1, -1]])
    with pytest.raises(ValueError):
        student.call("sequence_cross_entropy", torch.zeros(1, 2, 3), targets, -1)
