"""Unit tests of llmcourse.classic.rnn and llmcourse.classic.rnn_models: formulas by hand, shapes,
padding, validation, generation, and a short training run.

Agreement with PyTorch's own modules is in test_rnn_torch_parity.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from llmcourse.classic import (
    GRU,
    LSTM,
    RNN,
    GRUCell,
    LSTMCell,
    RNNCell,
    RNNLanguageModel,
    SequenceClassifier,
    SequenceTagger,
    final_states,
    from_torch,
    load_torch_weights,
    mean_pool,
    recurrent_layer,
    sequence_cross_entropy,
)
from llmcourse.data import pad_batch
from llmcourse.training import train


def set_cell(cell, w_ih, w_hh, b_ih, b_hh):
    with torch.no_grad():
        for p, value in zip(
            (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
            (w_ih, w_hh, b_ih, b_hh),
            strict=True,
        ):
            p.copy_(torch.as_tensor(value, dtype=p.dtype))


# --------------------------------------------------------------------- cells by hand
def test_rnn_cell_computes_the_recurrence_by_hand():
    cell = RNNCell(2, 1)
    set_cell(cell, [[0.5, -1.0]], [[2.0]], [0.1], [-0.3])
    h = cell(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.25]]))
    # tanh(0.5 * 1 - 1 * 2 + 0.1 + 2 * 0.25 - 0.3) = tanh(-1.2)
    assert h.item() == pytest.approx(math.tanh(-1.2))
    cell.nonlinearity = "relu"
    assert cell(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.25]])).item() == 0.0
    assert cell(torch.tensor([[4.0, 0.0]])).item() == pytest.approx(2.0 + 0.1 - 0.3)


def test_lstm_cell_computes_the_gates_by_hand():
    # With zero weights every gate is the sigmoid (or tanh) of its bias alone.
    cell = LSTMCell(3, 1)
    b_i, b_f, b_g, b_o = 0.5, -1.0, 2.0, 0.3
    set_cell(cell, torch.zeros(4, 3), torch.zeros(4, 1), [b_i, b_f, b_g, b_o], [0, 0, 0, 0])
    c_prev = 0.7
    h, c = cell(torch.ones(1, 3), (torch.full((1, 1), 9.0), torch.full((1, 1), c_prev)))

    def sigmoid(z):
        return 1 / (1 + math.exp(-z))

    expected_c = sigmoid(b_f) * c_prev + sigmoid(b_i) * math.tanh(b_g)  # k_t + j_t
    assert c.item() == pytest.approx(expected_c)
    assert h.item() == pytest.approx(sigmoid(b_o) * math.tanh(expected_c))


def test_lstm_gate_order_is_i_f_g_o():
    # Only the forget gate's weight block reads x: a large input then makes f -> 1 and
    # the cell keeps c_prev (i, g, o have zero pre-activation: i = o = 0.5, g = 0).
    cell = LSTMCell(1, 1)
    set_cell(
        cell, [[0.0], [100.0], [0.0], [0.0]], torch.zeros(4, 1), torch.zeros(4), torch.zeros(4)
    )
    _, c = cell(torch.ones(1, 1), (torch.zeros(1, 1), torch.full((1, 1), 0.8)))
    assert c.item() == pytest.approx(0.8)


def test_gru_cell_computes_the_gates_by_hand():
    # Weights on x only (the gate order r, z, n), and biases on h's side.
    cell = GRUCell(1, 1)
    w_r, w_z, w_n, u_r, u_z, u_n = 0.5, -1.0, 2.0, 0.3, -0.2, 1.5
    b_hn = 0.4
    set_cell(cell, [[w_r], [w_z], [w_n]], [[u_r], [u_z], [u_n]], [0, 0, 0], [0, 0, b_hn])
    x, h_prev = 0.8, -0.6
    h = cell(torch.tensor([[x]]), torch.tensor([[h_prev]]))

    def sigmoid(z):
        return 1 / (1 + math.exp(-z))

    r = sigmoid(w_r * x + u_r * h_prev)
    z = sigmoid(w_z * x + u_z * h_prev)
    n = math.tanh(w_n * x + r * (u_n * h_prev + b_hn))  # the reset gate scales W_hn h + b_hn
    assert h.item() == pytest.approx((1 - z) * n + z * h_prev)


def test_gru_update_gate_near_one_keeps_the_state():
    # Only the update gate's weight block reads x: a large input gives z -> 1, h' = h.
    cell = GRUCell(1, 2)
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
        cell.weight_ih[2:4] = 100.0  # rows 2..3: the update gate z
    h = torch.tensor([[0.3, -0.7]])
    torch.testing.assert_close(cell(torch.ones(1, 1), h), h)


def test_cells_default_to_a_zero_state_and_accept_unbatched_input():
    torch.manual_seed(0)
    for cell in (RNNCell(3, 4), LSTMCell(3, 4), GRUCell(3, 4)):
        x = torch.randn(2, 3)
        default = cell(x)
        zeros = torch.zeros(2, 4)
        explicit = cell(x, (zeros, zeros)) if isinstance(cell, LSTMCell) else cell(x, zeros)
        for a, b in zip(
            default if isinstance(default, tuple) else (default,),
            explicit if isinstance(explicit, tuple) else (explicit,),
            strict=True,
        ):
            torch.testing.assert_close(a, b)
        single = cell(x[0])
        first = single[0] if isinstance(single, tuple) else single
        assert first.shape == (4,)


def test_cell_parameters_have_torch_shapes_and_init_range():
    cell = LSTMCell(3, 5)
    assert cell.weight_ih.shape == (20, 3) and cell.weight_hh.shape == (20, 5)
    assert cell.bias_ih.shape == cell.bias_hh.shape == (20,)
    bound = 1 / math.sqrt(5)
    assert all(p.abs().max() <= bound for p in cell.parameters())
    assert RNNCell(3, 5, bias=False).bias_ih is None
    gru = GRUCell(3, 5)
    assert gru.weight_ih.shape == (15, 3) and gru.weight_hh.shape == (15, 5)


# -------------------------------------------------------------------------- layers
@pytest.mark.parametrize("layer_type", [RNN, LSTM, GRU])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_layer_shapes(layer_type, num_layers, bidirectional, batch_first):
    layer = layer_type(3, 4, num_layers, bidirectional=bidirectional, batch_first=batch_first)
    d = 2 if bidirectional else 1
    x = torch.randn(2, 7, 3) if batch_first else torch.randn(7, 2, 3)
    output, state = layer(x)
    assert output.shape == ((2, 7, d * 4) if batch_first else (7, 2, d * 4))
    states = state if isinstance(state, tuple) else (state,)
    assert len(states) == (2 if layer_type is LSTM else 1)
    for s in states:
        assert s.shape == (num_layers * d, 2, 4)  # the batch stays second, as in torch
    assert len(layer.cells) == num_layers * d
    assert layer.cells[-1].input_size == (3 if num_layers == 1 else d * 4)


def test_layer_runs_its_cell_step_by_step():
    torch.manual_seed(0)
    layer = LSTM(3, 4)
    x = torch.randn(5, 2, 3)
    h = c = torch.zeros(2, 4)
    outputs = []
    for x_t in x:
        h, c = layer.cells[0](x_t, (h, c))
        outputs.append(h)
    output, (h_n, c_n) = layer(x)
    torch.testing.assert_close(output, torch.stack(outputs))
    torch.testing.assert_close(h_n[0], h)
    torch.testing.assert_close(c_n[0], c)


def test_backward_direction_reads_the_reversed_sequence():
    torch.manual_seed(0)
    bi = RNN(3, 4, bidirectional=True)
    backward = RNN(3, 4)
    backward.cells[0].load_state_dict(bi.cells[1].state_dict())
    x = torch.randn(6, 2, 3)
    output, h_n = bi(x)
    reversed_output, reversed_h = backward(x.flip(0))
    torch.testing.assert_close(output[..., 4:], reversed_output.flip(0))
    torch.testing.assert_close(h_n[1], reversed_h[0])


@pytest.mark.parametrize("layer_type", [RNN, LSTM])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_a_sequence(layer_type, bidirectional):
    torch.manual_seed(0)
    layer = layer_type(3, 4, num_layers=2, bidirectional=bidirectional, batch_first=True)
    short, long = torch.randn(1, 3, 3), torch.randn(1, 6, 3)
    padded = torch.cat([torch.cat([short, torch.full((1, 3, 3), 7.0)], dim=1), long])
    output, state = layer(padded, lengths=torch.tensor([3, 6]))
    alone_output, alone_state = layer(short)
    torch.testing.assert_close(output[:1, :3], alone_output)
    assert torch.all(output[0, 3:] == 0)
    states = state if isinstance(state, tuple) else (state,)
    alone = alone_state if isinstance(alone_state, tuple) else (alone_state,)
    for s, a in zip(states, alone, strict=True):
        torch.testing.assert_close(s[:, :1], a)
    full_output, _ = layer(long)
    torch.testing.assert_close(output[1:], full_output)


def test_lengths_may_be_a_list():
    torch.manual_seed(0)
    layer = RNN(2, 3)
    x = torch.randn(4, 2, 2)
    a, _ = layer(x, lengths=[4, 2])
    b, _ = layer(x, lengths=torch.tensor([4, 2]))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RNN(3, 0), "hidden_size must be an integer >= 1, got 0"),
        (lambda: LSTM(0, 4), "input_size must be an integer >= 1, got 0"),
        (lambda: RNN(3, 4, num_layers=0), "num_layers must be an integer >= 1"),
        (lambda: RNN(3, 4, nonlinearity="sigmoid"), "nonlinearity must be 'tanh' or 'relu'"),
        (lambda: RNNCell(3, 2.5), "hidden_size must be an integer"),
    ],
)
def test_constructors_validate(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m(torch.randn(5, 2, 4)), "input has 4 features, expected input_size=3"),
        (lambda m: m(torch.randn(3)), "input must be 3-D"),
        (lambda m: m(torch.randn(0, 2, 3)), "at least one time step"),
        (
            lambda m: m(torch.randn(5, 2, 3), torch.zeros(2, 2, 4)),
            r"initial state must have shape \(1, 2, 4\), got \(2, 2, 4\)",
        ),
        (
            lambda m: m(torch.randn(5, 3), torch.zeros(1, 2, 4)),
            r"initial state must have shape \(1, 4\)",
        ),
        (lambda m: m(torch.randn(5, 2, 3), lengths=[5, 6]), r"lengths must be in \[1, 5\]"),
        (lambda m: m(torch.randn(5, 2, 3), lengths=[5, 0]), r"lengths must be in \[1, 5\]"),
        (lambda m: m(torch.randn(5, 2, 3), lengths=[5]), "lengths must hold 2 integers"),
        (
            lambda m: m(torch.randn(5, 2, 3), lengths=torch.tensor([5.0, 2.0])),
            "lengths must hold 2 integers",
        ),
    ],
)
def test_forward_validates(call, message):
    with pytest.raises(ValueError, match=message):
        call(RNN(3, 4))


def test_lstm_and_cells_validate_their_states():
    with pytest.raises(ValueError, match="hx must be a pair"):
        LSTM(3, 4)(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4),))
    with pytest.raises(ValueError, match="state must be a pair"):
        LSTMCell(3, 4)(torch.randn(2, 3), (torch.zeros(2, 4),))
    with pytest.raises(ValueError, match=r"state must have shape \(2, 4\), got \(2, 5\)"):
        RNNCell(3, 4)(torch.randn(2, 3), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3\)"):
        RNNCell(3, 4)(torch.randn(2, 2))


# -------------------------------------------------------------------- torch interop
def test_load_torch_weights_refuses_mismatches():
    with pytest.raises(ValueError, match="cannot load a LSTM into a RNN"):
        load_torch_weights(RNN(3, 4), nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="cannot load a GRU into a LSTM"):
        load_torch_weights(LSTM(3, 4), nn.GRU(3, 4))
    with pytest.raises(ValueError, match="dropout between layers is not supported"):
        load_torch_weights(GRU(3, 4, num_layers=2), nn.GRU(3, 4, num_layers=2, dropout=0.5))
    with pytest.raises(ValueError, match="hidden_size differs: 4 here, 5 in the reference"):
        load_torch_weights(RNN(3, 4), nn.RNN(3, 5))
    with pytest.raises(ValueError, match="bidirectional differs"):
        load_torch_weights(LSTM(3, 4), nn.LSTM(3, 4, bidirectional=True))
    with pytest.raises(ValueError, match="nonlinearity differs"):
        load_torch_weights(RNN(3, 4), nn.RNN(3, 4, nonlinearity="relu"))
    with pytest.raises(ValueError, match="dropout between layers is not supported"):
        load_torch_weights(LSTM(3, 4, num_layers=2), nn.LSTM(3, 4, num_layers=2, dropout=0.5))
    with pytest.raises(ValueError, match="proj_size is not supported"):
        from_torch(nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(
        ValueError, match="expected nn.RNNCell, nn.LSTMCell, nn.GRUCell, nn.RNN, nn.LSTM or nn.GRU"
    ):
        from_torch(nn.Linear(3, 4))


def test_from_torch_copies_the_configuration():
    reference = nn.RNN(3, 4, num_layers=2, nonlinearity="relu", batch_first=True, bias=False)
    ours = from_torch(reference)
    assert (ours.num_layers, ours.nonlinearity, ours.batch_first, ours.bias) == (
        2,
        "relu",
        True,
        False,
    )


# -------------------------------------------------------------------------- models
def test_pad_batch_and_mean_pool_by_hand():
    ids, lengths = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1]
    output = torch.tensor([[[1.0], [2.0], [6.0]], [[4.0], [100.0], [100.0]]])
    assert mean_pool(output, lengths).tolist() == [[3.0], [4.0]]
    with pytest.raises(ValueError, match="sequences is empty"):
        pad_batch([], 0)
    with pytest.raises(ValueError, match="at least one token"):
        pad_batch([[1], []], 0)
    with pytest.raises(ValueError, match="need output"):
        mean_pool(output[0], lengths)


def test_final_states_picks_both_ends_when_bidirectional():
    h_n = torch.arange(4 * 2 * 3, dtype=torch.float).reshape(4, 2, 3)  # 2 layers x 2 dirs
    assert torch.equal(final_states(h_n, bidirectional=False), h_n[3])
    assert torch.equal(final_states(h_n, bidirectional=True), torch.cat([h_n[2], h_n[3]], -1))


def test_sequence_cross_entropy_by_hand_ignores_padding():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]]))
    targets = torch.tensor([[0, -1]])
    assert sequence_cross_entropy(logits, targets, -1).item() == pytest.approx(math.log(2))
    targets = torch.tensor([[1, 2]])
    expected = (math.log(4) - math.log(0.8)) / 2
    assert sequence_cross_entropy(logits, targets, -1).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="every target is padding"):
        sequence_cross_entropy(logits, torch.tensor([[-1, -1]]), -1)
    with pytest.raises(ValueError, match="need logits"):
        sequence_cross_entropy(logits, torch.tensor([0, 1]), -1)


def test_recurrent_layer_validates_the_cell():
    assert isinstance(recurrent_layer("lstm", 3, 4), LSTM)
    with pytest.raises(ValueError, match="cell must be one of"):
        recurrent_layer("gru", 3, 4)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_language_model_steps_with_its_state_like_a_full_forward(cell):
    torch.manual_seed(0)
    model = RNNLanguageModel(vocab_size=11, embedding_dim=5, hidden_size=6, cell=cell)
    ids = torch.randint(0, 11, (2, 7))
    logits, _ = model(ids)
    assert logits.shape == (2, 7, 11)
    state, stepped = None, []
    for t in range(7):
        step_logits, state = model(ids[:, t : t + 1], state)
        stepped.append(step_logits)
    torch.testing.assert_close(torch.cat(stepped, dim=1), logits)


def make_generator_model(eos_bias: float) -> RNNLanguageModel:
    torch.manual_seed(0)
    model = RNNLanguageModel(vocab_size=6, embedding_dim=4, hidden_size=5)
    with torch.no_grad():
        model.output.bias[2] = eos_bias  # id 2 plays </s>
    return model


def test_generate_is_repeatable_and_stops_at_eos():
    model = make_generator_model(0.0)
    runs = [model.generate(bos_id=1, eos_id=2, max_length=50, seed=s) for s in range(8)]
    assert runs == [model.generate(bos_id=1, eos_id=2, max_length=50, seed=s) for s in range(8)]
    assert len({tuple(r) for r in runs}) > 3  # different seeds, different samples
    # </s> (probability about 1/6 per step) ends every sample early and is not returned
    assert all(len(r) < 50 and 2 not in r for r in runs)
    assert make_generator_model(50.0).generate(1, 2, seed=0) == []  # </s> is certain
    assert len(make_generator_model(-50.0).generate(1, 2, max_length=12, seed=0)) == 12
    assert model.training  # generate restores the mode


def test_generate_samples_from_the_model_distribution():
    # The first token's frequencies over many seeds approach softmax(logits after <s>).
    model = make_generator_model(-50.0)
    with torch.no_grad():
        expected = torch.softmax(model(torch.tensor([[1]]))[0][0, -1], dim=-1)
    counts = torch.zeros(6)
    for seed in range(2000):
        counts[model.generate(1, 2, max_length=1, seed=seed)[0]] += 1
    torch.testing.assert_close(counts / 2000, expected, atol=0.04, rtol=0)


def test_generate_validates():
    model = make_generator_model(0.0)
    with pytest.raises(ValueError, match="max_length must be a non-negative integer"):
        model.generate(1, 2, max_length=-1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        model.generate(1, 2, temperature=0.0)


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_classifier_ignores_padding(pooling, bidirectional, cell):
    torch.manual_seed(0)
    model = SequenceClassifier(9, 4, 5, 3, cell=cell, pooling=pooling, bidirectional=bidirectional)
    ids, lengths = pad_batch([[1, 2, 3, 4], [5, 6]], pad_id=0)
    batch_logits = model(ids, lengths)
    assert batch_logits.shape == (2, 3)
    alone = model(torch.tensor([[5, 6]]), torch.tensor([2]))
    torch.testing.assert_close(batch_logits[1:], alone)


def test_classifier_and_tagger_validate():
    with pytest.raises(ValueError, match="pooling must be one of"):
        SequenceClassifier(9, 4, 5, 3, pooling="max")
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        SequenceClassifier(9, 4, 5, 0)
    with pytest.raises(ValueError, match="num_tags must be an integer >= 1"):
        SequenceTagger(9, 4, 5, 0)
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 1"):
        RNNLanguageModel(0, 4, 5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_tagger_shapes_and_padding(bidirectional):
    torch.manual_seed(0)
    model = SequenceTagger(9, 4, 5, 3, cell="lstm", num_layers=2, bidirectional=bidirectional)
    ids, lengths = pad_batch([[1, 2, 3, 4], [5, 6]], pad_id=0)
    logits = model(ids, lengths)
    assert logits.shape == (2, 4, 3)
    torch.testing.assert_close(logits[1:, :2], model(torch.tensor([[5, 6]]), torch.tensor([2])))


def test_a_tagger_learns_to_copy_the_previous_token():
    # Tag = the previous token (0 at the start): needs one step of memory, which a
    # left-to-right RNN has and a bag of words does not.
    generator = torch.Generator().manual_seed(0)

    def batches():
        while True:
            ids = torch.randint(1, 4, (16, 6), generator=generator)
            tags = torch.cat([torch.zeros(16, 1, dtype=torch.long), ids[:, :-1]], dim=1)
            yield ids, torch.full((16,), 6), tags

    def loss(model, batch):
        ids, lengths, tags = batch
        return sequence_cross_entropy(model(ids, lengths), tags, pad_id=-100)

    torch.manual_seed(0)
    model = SequenceTagger(4, 8, 16, 4)
    history = train(model, loss, batches(), steps=150, lr=0.02, progress=False)
    assert history.train_loss[0] > 1.0 and history.train_loss[-1] < 0.1
