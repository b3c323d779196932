"""Parity of llmcourse.classic.rnn (RNN, LSTM, GRU) with PyTorch's own recurrent modules,
with copied weights.

For every configuration we build a ``torch.nn`` module, copy its weights into ours with
``from_torch``, run both on the same random input (float64, so that the tolerances can
be tight) and compare the outputs, the final states and the gradients of a random
linear function of all outputs with respect to the input, the initial state and every
weight. Padded batches go through torch as a ``PackedSequence``
(``pack_padded_sequence`` / ``pad_packed_sequence``), which is what our ``lengths``
argument reproduces.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from llmcourse.classic import (
    GRU,
    LSTM,
    RNN,
    GRUCell,
    LSTMCell,
    RNNCell,
    from_torch,
    torch_parameter_name,
)

DTYPE = torch.float64
INPUT, HIDDEN, STEPS, BATCH = 3, 4, 5, 3


def random_like(tensors, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(t.shape, generator=generator, dtype=t.dtype) for t in tensors]


def backward_through(tensors, seed=123):
    """Backpropagate a random linear function of all the given tensors."""
    weights = random_like(tensors, seed)
    sum((t * w).sum() for t, w in zip(tensors, weights, strict=True)).backward()


def flat(result):
    """The tensors of a module's result: ``(output, h_n)`` or ``(output, (h_n, c_n))``."""
    if isinstance(result, torch.Tensor):
        return [result]
    return [t for part in result for t in flat(part)]


def make_torch_layer(kind, nonlinearity, **options):
    torch.manual_seed(0)
    if kind == "lstm":
        return nn.LSTM(INPUT, HIDDEN, **options).to(DTYPE)
    if kind == "gru":
        return nn.GRU(INPUT, HIDDEN, **options).to(DTYPE)
    return nn.RNN(INPUT, HIDDEN, nonlinearity=nonlinearity, **options).to(DTYPE)


def assert_same_parameter_grads(ours, reference):
    theirs = dict(reference.named_parameters())
    for k, cell in enumerate(ours.cells):
        layer, direction = divmod(k, ours.num_directions)
        for name, p in cell.named_parameters():
            torch_name = torch_parameter_name(name, layer, direction == 1)
            torch.testing.assert_close(p.grad, theirs[torch_name].grad, msg=torch_name)


KINDS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)]
OURS = {"rnn": (RNNCell, RNN), "lstm": (LSTMCell, LSTM), "gru": (GRUCell, GRU)}


# ------------------------------------------------------------------------------- cells
@pytest.mark.parametrize(("kind", "nonlinearity"), KINDS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_cells_match_torch(kind, nonlinearity, bias, batched, with_state):
    torch.manual_seed(0)
    if kind == "lstm":
        reference = nn.LSTMCell(INPUT, HIDDEN, bias=bias).to(DTYPE)
    elif kind == "gru":
        reference = nn.GRUCell(INPUT, HIDDEN, bias=bias).to(DTYPE)
    else:
        reference = nn.RNNCell(INPUT, HIDDEN, bias=bias, nonlinearity=nonlinearity).to(DTYPE)
    ours = from_torch(reference)
    assert type(ours) is OURS[kind][0]
    shape = (BATCH,) if batched else ()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, INPUT, generator=generator, dtype=DTYPE)
    states = [torch.randn(*shape, HIDDEN, generator=generator, dtype=DTYPE) for _ in range(2)]
    inputs = {}
    for name, module in (("ours", ours), ("torch", reference)):
        xi = x.clone().requires_grad_(True)
        si = [s.clone().requires_grad_(True) for s in states]
        if kind == "lstm":
            result = module(xi, tuple(si)) if with_state else module(xi)
        else:
            result = module(xi, si[0]) if with_state else module(xi)
        backward_through(flat(result))
        inputs[name] = (flat(result), xi, si)
    (ours_out, ours_x, ours_s), (ref_out, ref_x, ref_s) = inputs["ours"], inputs["torch"]
    for a, b in zip(ours_out, ref_out, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(ours_x.grad, ref_x.grad)
    for a, b in zip(ours_s, ref_s, strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    theirs = dict(reference.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, theirs[name].grad, msg=name)


# ------------------------------------------------------------------------------ layers
LAYER_OPTIONS = [
    dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    for num_layers, bidirectional, batch_first in itertools.product(
        [1, 2, 3], [False, True], [False, True]
    )
]


def layer_input(batch_first, batched=True, seed=1):
    generator = torch.Generator().manual_seed(seed)
    if not batched:
        return torch.randn(STEPS, INPUT, generator=generator, dtype=DTYPE)
    shape = (BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT)
    return torch.randn(*shape, generator=generator, dtype=DTYPE)


def initial_state(kind, reference, batched=True, seed=2):
    generator = torch.Generator().manual_seed(seed)
    directions = 2 if reference.bidirectional else 1
    shape = (reference.num_layers * directions, *((BATCH,) if batched else ()), HIDDEN)
    states = [torch.randn(shape, generator=generator, dtype=DTYPE) for _ in range(2)]
    return states if kind == "lstm" else states[:1]


def run_both(kind, ours, reference, x, h0=None, lengths=None):
    """Forward and backward through both modules; returns per module (tensors, x, h0)."""
    runs = []
    for module in (ours, reference):
        module.zero_grad()
        xi = x.clone().requires_grad_(True)
        hi = None if h0 is None else [h.clone().requires_grad_(True) for h in h0]
        hx = None if hi is None else (tuple(hi) if kind == "lstm" else hi[0])
        if module is ours:
            result = module(xi, hx, lengths=lengths)
        elif lengths is None:
            result = module(xi, hx)
        else:
            packed = pack_padded_sequence(
                xi, lengths, batch_first=module.batch_first, enforce_sorted=False
            )
            output, state = module(packed, hx)
            output, _ = pad_packed_sequence(
                output, batch_first=module.batch_first, total_length=STEPS
            )
            result = (output, state)
        tensors = flat(result)
        backward_through(tensors)
        runs.append((tensors, xi, hi))
    return runs


def assert_runs_match(runs, ours, reference):
    (ours_out, ours_x, ours_h), (ref_out, ref_x, ref_h) = runs
    assert len(ours_out) == len(ref_out)
    for a, b in zip(ours_out, ref_out, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(ours_x.grad, ref_x.grad)
    for a, b in zip(ours_h or [], ref_h or [], strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    assert_same_parameter_grads(ours, reference)


@pytest.mark.parametrize(("kind", "nonlinearity"), KINDS)
@pytest.mark.parametrize("options", LAYER_OPTIONS, ids=lambda o: "-".join(map(str, o.values())))
def test_layers_match_torch(kind, nonlinearity, options):
    reference = make_torch_layer(kind, nonlinearity, **options)
    ours = from_torch(reference)
    assert type(ours) is OURS[kind][1]
    x = layer_input(options["batch_first"])
    runs = run_both(kind, ours, reference, x, initial_state(kind, reference))
    assert_runs_match(runs, ours, reference)


@pytest.mark.parametrize(("kind", "nonlinearity"), KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layers_match_torch_without_initial_state_or_bias(kind, nonlinearity, bidirectional):
    reference = make_torch_layer(
        kind, nonlinearity, num_layers=2, bidirectional=bidirectional, bias=False
    )
    ours = from_torch(reference)
    assert ours.cells[0].bias_ih is None and ours.cells[0].bias_hh is None
    runs = run_both(kind, ours, reference, layer_input(False))
    assert_runs_match(runs, ours, reference)


@pytest.mark.parametrize(("kind", "nonlinearity"), KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_unbatched_layers_match_torch(kind, nonlinearity, bidirectional):
    reference = make_torch_layer(kind, nonlinearity, num_layers=2, bidirectional=bidirectional)
    ours = from_torch(reference)
    x = layer_input(False, batched=False)
    h0 = initial_state(kind, reference, batched=False)
    runs = run_both(kind, ours, reference, x, h0)
    assert runs[0][0][0].shape == (STEPS, (2 if bidirectional else 1) * HIDDEN)
    assert_runs_match(runs, ours, reference)


@pytest.mark.parametrize(("kind", "nonlinearity"), KINDS)
@pytest.mark.parametrize(
    "options",
    [
        dict(num_layers=1, bidirectional=False, batch_first=True),
        dict(num_layers=2, bidirectional=True, batch_first=True),
        dict(num_layers=2, bidirectional=True, batch_first=False),
        dict(num_layers=3, bidirectional=False, batch_first=False),
    ],
    ids=lambda o: "-".join(map(str, o.values())),
)
@pytest.mark.parametrize("lengths", [[5, 2, 4], [1, 5, 3], [5, 5, 5]])
def test_padded_batches_match_torch_packed_sequences(kind, nonlinearity, options, lengths):
    reference = make_torch_layer(kind, nonlinearity, **options)
    ours = from_torch(reference)
    x = layer_input(options["batch_first"])
    lengths = torch.tensor(lengths)
    runs = run_both(kind, ours, reference, x, initial_state(kind, reference), lengths)
    assert_runs_match(runs, ours, reference)
    # our outputs are zero at padded steps, as pad_packed_sequence makes them
    output = runs[0][0][0] if options["batch_first"] else runs[0][0][0].transpose(0, 1)
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(output[b, n:] == 0)


def test_from_torch_keeps_dtype_and_leaves_the_reference_untouched():
    reference = make_torch_layer("lstm", None, num_layers=2, bidirectional=True)
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    ours = from_torch(reference)
    assert all(p.dtype == DTYPE for p in ours.parameters())
    for k, v in reference.state_dict().items():
        assert v.dtype == DTYPE
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    # the copy is a copy: changing ours does not change torch's
    with torch.no_grad():
        ours.cells[0].weight_ih.zero_()
    assert reference.weight_ih_l0.abs().sum() > 0


def test_float32_modules_match_too():
    torch.manual_seed(0)
    reference = nn.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True)
    ours = from_torch(reference)
    x = torch.randn(STEPS, BATCH, INPUT)
    (out_a, (h_a, c_a)), (out_b, (h_b, c_b)) = ours(x), reference(x)
    torch.testing.assert_close(out_a, out_b)
    torch.testing.assert_close(h_a, h_b)
    torch.testing.assert_close(c_a, c_b)
