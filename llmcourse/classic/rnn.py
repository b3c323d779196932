"""Recurrent networks from scratch: RNN, LSTM and GRU cells, and stacked, bidirectional layers.

A recurrent network reads a sequence one step at a time and carries a state forward.
The simple (Elman) RNN updates a hidden vector,

    h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),      f = tanh or relu,

and the LSTM (Hochreiter and Schmidhuber, 1997, with the forget gate of Gers et al.,
2000) adds a memory cell ``c_t`` that gates decide what to forget, what to add and what
to show:

    f_t = sigmoid(...)   k_t = c_{t-1} * f_t      forget gate: what is kept
    g_t = tanh(...)      i_t = sigmoid(...)       candidate and input ("add") gate
    j_t = g_t * i_t      c_t = j_t + k_t          what is added, the new cell
    o_t = sigmoid(...)   h_t = o_t * tanh(c_t)    output gate, the new hidden state

where every ``(...)`` is ``W x_t + b + V h_{t-1} + b'`` with its own weights. The GRU
(Cho et al., 2014) has two gates and no cell:

    r_t = sigmoid(...)   z_t = sigmoid(...)       reset and update gates
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))     candidate state
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}         keep the old state where z_t is near 1

Everything here is written with explicit matrix products and follows the conventions
of ``torch.nn.RNN``/``LSTM``/``GRU`` exactly -- parameter shapes, the gate orders
inside the stacked weights (LSTM ``i, f, g, o``, GRU ``r, z, n``), argument names,
input and output shapes, the layout of the final states -- so that
:func:`~llmcourse.classic.rnn_interop.load_torch_weights` can copy a torch module's
weights into ours and the two compute the same function (the parity tests check
outputs, final states and gradients). The layers also take the true
``lengths`` of padded sequences, which torch expresses with ``PackedSequence``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import check_int, on_host

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}

State = tuple[Tensor, ...]  # (h,) for an RNN or a GRU, (h, c) for an LSTM


# ------------------------------------------------------------------------------- cells
class _Cell(nn.Module):
    """Weights shared by the cells: ``num_gates`` blocks of ``hidden_size`` rows each.

    Parameters (the names and shapes of ``torch.nn.RNNCell``/``LSTMCell``/``GRUCell``):
        weight_ih: ``(num_gates * hidden_size, input_size)``
        weight_hh: ``(num_gates * hidden_size, hidden_size)``
        bias_ih, bias_hh: ``(num_gates * hidden_size,)``, or None when ``bias=False``.
    """

    num_gates = 1
    num_states = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        check_int("input_size", input_size)
        check_int("hidden_size", hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        rows = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows))
            self.bias_hh = nn.Parameter(torch.empty(rows))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias uniform in ``[-1/sqrt(hidden_size), 1/sqrt(hidden_size)]``."""
        bound = 1 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def input_projection(self, x: Tensor) -> Tensor:
        """``W_ih x + b_ih``: ``x (..., input_size)`` -> ``(..., num_gates * hidden_size)``.

        It does not depend on the previous state, so a layer computes it for all time
        steps with one matrix product before the loop over time.
        """
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, projected_x: Tensor, state: State) -> State:
        """One time step: ``projected_x = input_projection(x)``, ``(batch, num_gates * H)``,
        and the previous state, ``num_states`` tensors ``(batch, H)`` -> the new state."""
        raise NotImplementedError

    def _run(self, x: Tensor, state: State | None) -> State:
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x must have shape (batch, {self.input_size}) or ({self.input_size},), "
                f"got {tuple(x.shape)}"
            )
        expected = (*x.shape[:-1], self.hidden_size)
        if state is None:
            state = tuple(x.new_zeros(expected) for _ in range(self.num_states))
        for s in state:
            if s.shape != expected:
                raise ValueError(f"state must have shape {expected}, got {tuple(s.shape)}")
        return self.step(self.input_projection(x), state)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


class RNNCell(_Cell):
    """The simple recurrent cell ``h' = f(W_ih x + b_ih + W_hh h + b_hh)``, like ``nn.RNNCell``.

    Args:
        input_size: features of ``x``.
        hidden_size: features of ``h``.
        bias: use ``b_ih`` and ``b_hh``.
        nonlinearity: ``"tanh"`` or ``"relu"``.
    """

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"
    ) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)

    def step(self, projected_x: Tensor, state: State) -> State:
        (h,) = state
        pre = projected_x + F.linear(h, self.weight_hh, self.bias_hh)
        return (NONLINEARITIES[self.nonlinearity](pre),)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """``x: (batch, input_size)``, ``h: (batch, hidden_size)`` or None (zeros) -> new ``h``.

        Unbatched ``x: (input_size,)`` with ``h: (hidden_size,)`` works too.
        """
        (h,) = self._run(x, None if h is None else (h,))
        return h

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}"


class LSTMCell(_Cell):
    """A long short-term memory cell, like ``nn.LSTMCell`` (gate order ``i, f, g, o``).

    Args:
        input_size: features of ``x``.
        hidden_size: features of ``h`` and of the cell ``c``.
        bias: use ``b_ih`` and ``b_hh``.
    """

    num_gates = 4
    num_states = 2

    def step(self, projected_x: Tensor, state: State) -> State:
        h, c = state
        pre = projected_x + F.linear(h, self.weight_hh, self.bias_hh)
        pre_i, pre_f, pre_g, pre_o = pre.chunk(4, dim=-1)  # torch's order
        f = torch.sigmoid(pre_f)  # forget gate
        k = c * f  # what the cell keeps from its past
        g = torch.tanh(pre_g)  # candidate information
        i = torch.sigmoid(pre_i)  # input ("add") gate
        j = g * i  # what the cell adds
        c = j + k
        o = torch.sigmoid(pre_o)  # output gate
        h = o * torch.tanh(c)
        return (h, c)

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """``x: (batch, input_size)``, ``state = (h, c)``, each ``(batch, hidden_size)``, or
        None (zeros) -> the new ``(h, c)``. Unbatched ``x: (input_size,)`` works too."""
        if state is not None and len(state) != 2:
            raise ValueError("state must be a pair (h, c)")
        h, c = self._run(x, None if state is None else tuple(state))
        return h, c


class GRUCell(_Cell):
    """A gated recurrent unit, like ``nn.GRUCell`` (gate order ``r, z, n``).

    Args:
        input_size: features of ``x``.
        hidden_size: features of ``h``.
        bias: use ``b_ih`` and ``b_hh``.
    """

    num_gates = 3

    def step(self, projected_x: Tensor, state: State) -> State:
        (h,) = state
        x_r, x_z, x_n = projected_x.chunk(3, dim=-1)  # W_i* x + b_i*, torch's order
        h_r, h_z, h_n = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)  # reset gate: how much of h the candidate reads
        z = torch.sigmoid(x_z + h_z)  # update gate: how much of h is kept
        n = torch.tanh(x_n + r * h_n)  # candidate state
        return ((1 - z) * n + z * h,)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """``x: (batch, input_size)``, ``h: (batch, hidden_size)`` or None (zeros) -> new ``h``.

        Unbatched ``x: (input_size,)`` with ``h: (hidden_size,)`` works too.
        """
        (h,) = self._run(x, None if h is None else (h,))
        return h


# ------------------------------------------------------------------------------ layers
class _Recurrent(nn.Module):
    """A stack of recurrent layers, each with one cell per direction.

    Layer ``l`` reads the outputs of layer ``l - 1`` (the embeddings for ``l = 0``); in
    a bidirectional layer a forward cell reads ``x_1 .. x_T`` and a backward cell reads
    ``x_T .. x_1``, and the layer's output at step ``t`` is the concatenation
    ``h_t^f (+) h_t^b``. The cell of layer ``l`` and direction ``d`` is
    ``cells[l * num_directions + d]``, the same index as its final state in ``h_n``.
    """

    def __init__(
        self,
        cells: list[_Cell],
        num_layers: int,
        batch_first: bool,
        bidirectional: bool,
    ) -> None:
        super().__init__()
        self.cells = nn.ModuleList(cells)
        first = cells[0]
        self.input_size, self.hidden_size = first.input_size, first.hidden_size
        self.num_layers, self.bias = num_layers, first.bias
        self.batch_first, self.bidirectional = batch_first, bidirectional
        self.num_directions = 2 if bidirectional else 1

    @staticmethod
    def _layer_sizes(
        input_size: int, hidden_size: int, num_layers: int, bidirectional: bool
    ) -> list[int]:
        """The input size of the cells of each layer, one entry per cell."""
        check_int("input_size", input_size)
        check_int("hidden_size", hidden_size)
        check_int("num_layers", num_layers)
        directions = 2 if bidirectional else 1
        sizes = [input_size] + [directions * hidden_size] * (num_layers - 1)
        return [size for size in sizes for _ in range(directions)]

    def _run(
        self, input: Tensor, hx: State | None, lengths: Tensor | Sequence[int] | None
    ) -> tuple[Tensor, State]:
        """The shared forward pass; ``hx`` holds one ``(L*D, batch, H)`` tensor per state."""
        if input.ndim not in (2, 3):
            raise ValueError(
                f"input must be 3-D (batched) or 2-D (unbatched), got shape {tuple(input.shape)}"
            )
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"input has {input.shape[-1]} features, expected input_size={self.input_size}"
            )
        batched = input.ndim == 3
        if not batched:
            input = input.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        steps, batch = input.shape[:2]
        if steps == 0:
            raise ValueError("input must have at least one time step")
        mask = None if lengths is None else _length_mask(lengths, steps, batch, input.device)
        n_states = self.cells[0].num_states
        expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if hx is None:
            hx = tuple(input.new_zeros(expected) for _ in range(n_states))
        else:
            shown = expected if batched else (expected[0], expected[2])
            for s in hx:
                if s.shape != shown:
                    raise ValueError(f"initial state must have shape {shown}, got {tuple(s.shape)}")
            hx = hx if batched else tuple(s.unsqueeze(1) for s in hx)
        layer_input, finals = input, []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                state = tuple(s[k] for s in hx)
                out, state = _scan(self.cells[k], layer_input, state, mask, reverse=direction == 1)
                outputs.append(out)
                finals.append(state)
            layer_input = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
        output = layer_input
        h_n = tuple(torch.stack([f[i] for f in finals]) for i in range(n_states))
        if not batched:
            return output.squeeze(1), tuple(s.squeeze(1) for s in h_n)
        return (output.transpose(0, 1) if self.batch_first else output), h_n

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bias={self.bias}, batch_first={self.batch_first}, "
            f"bidirectional={self.bidirectional}"
        )


def _length_mask(
    lengths: Tensor | Sequence[int], steps: int, batch: int, device: torch.device
) -> Tensor:
    """``(steps, batch, 1)`` booleans, True where ``t < lengths[b]``."""
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.shape != (batch,) or lengths.dtype.is_floating_point:
        raise ValueError(
            f"lengths must hold {batch} integers (one per sequence), got {tuple(lengths.shape)} "
            f"of {lengths.dtype}"
        )
    if on_host(lengths) and (lengths.min() < 1 or lengths.max() > steps):
        raise ValueError(f"lengths must be in [1, {steps}], got {lengths.tolist()}")
    return (torch.arange(steps, device=device)[:, None] < lengths[None, :]).unsqueeze(-1)


def _scan(
    cell: _Cell, xs: Tensor, state: State, mask: Tensor | None, reverse: bool
) -> tuple[Tensor, State]:
    """Run ``cell`` over ``xs: (T, B, in)`` from ``state``: outputs ``(T, B, H)``, final state.

    With a ``mask``, a sequence's state is frozen after its last step (or, reading
    backwards, until its last step), and its outputs are zero at padded steps, as
    ``pad_packed_sequence`` returns them.
    """
    projected = cell.input_projection(xs)  # (T, B, G*H), one product for all steps
    outputs: list[Tensor] = [xs.new_empty(0)] * xs.shape[0]
    order = range(xs.shape[0] - 1, -1, -1) if reverse else range(xs.shape[0])
    for t in order:
        new = cell.step(projected[t], state)
        if mask is None:
            state = new
            outputs[t] = new[0]
        else:
            valid = mask[t]
            state = tuple(torch.where(valid, n, s) for n, s in zip(new, state, strict=True))
            outputs[t] = torch.where(valid, new[0], torch.zeros_like(new[0]))
    return torch.stack(outputs), state


class RNN(_Recurrent):
    """A multi-layer Elman RNN with the interface of ``torch.nn.RNN``.

    Args:
        input_size: features of each input step.
        hidden_size: features of each hidden state.
        num_layers: stacked layers (the outputs of one are the inputs of the next).
        nonlinearity: ``"tanh"`` or ``"relu"``.
        bias: use the biases ``b_ih`` and ``b_hh``.
        batch_first: inputs and outputs are ``(batch, time, features)`` instead of
            ``(time, batch, features)``; the final states keep the batch second.
        bidirectional: add a backward cell to each layer and concatenate the outputs.

    ``forward(input, hx=None, lengths=None)`` takes ``input: (T, B, input_size)`` (or
    ``(B, T, input_size)``, or unbatched ``(T, input_size)``), an initial state
    ``hx: (num_layers * D, B, hidden_size)`` (zeros if None; D = 2 if bidirectional else
    1) and optionally the true ``lengths: (B,)`` of right-padded sequences. It returns
    ``(output, h_n)``: ``output: (T, B, D * hidden_size)``, the last layer's states at
    every step (zero at padded steps), and ``h_n: (num_layers * D, B, hidden_size)``, the
    final state of every layer and direction, ``h_n[l * D + d]``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
    ) -> None:
        sizes = self._layer_sizes(input_size, hidden_size, num_layers, bidirectional)
        cells = [RNNCell(size, hidden_size, bias, nonlinearity) for size in sizes]
        super().__init__(cells, num_layers, batch_first, bidirectional)
        self.nonlinearity = nonlinearity

    def forward(
        self,
        input: Tensor,
        hx: Tensor | None = None,
        lengths: Tensor | Sequence[int] | None = None,
    ) -> tuple[Tensor, Tensor]:
        output, (h_n,) = self._run(input, None if hx is None else (hx,), lengths)
        return output, h_n

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}"


class LSTM(_Recurrent):
    """A multi-layer LSTM with the interface of ``torch.nn.LSTM``.

    Arguments as for :class:`RNN` (without ``nonlinearity``). ``forward(input, hx=None,
    lengths=None)`` takes ``hx = (h_0, c_0)``, each ``(num_layers * D, B, hidden_size)``,
    and returns ``(output, (h_n, c_n))`` with the shapes of :class:`RNN`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
    ) -> None:
        sizes = self._layer_sizes(input_size, hidden_size, num_layers, bidirectional)
        cells = [LSTMCell(size, hidden_size, bias) for size in sizes]
        super().__init__(cells, num_layers, batch_first, bidirectional)

    def forward(
        self,
        input: Tensor,
        hx: tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | Sequence[int] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if hx is not None and len(hx) != 2:
            raise ValueError("hx must be a pair (h_0, c_0)")
        output, (h_n, c_n) = self._run(input, None if hx is None else tuple(hx), lengths)
        return output, (h_n, c_n)


class GRU(_Recurrent):
    """A multi-layer GRU with the interface of ``torch.nn.GRU``.

    Arguments as for :class:`RNN` (without ``nonlinearity``); ``forward(input, hx=None,
    lengths=None)`` takes and returns the states of :class:`RNN`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
    ) -> None:
        sizes = self._layer_sizes(input_size, hidden_size, num_layers, bidirectional)
        cells = [GRUCell(size, hidden_size, bias) for size in sizes]
        super().__init__(cells, num_layers, batch_first, bidirectional)

    def forward(
        self,
        input: Tensor,
        hx: Tensor | None = None,
        lengths: Tensor | Sequence[int] | None = None,
    ) -> tuple[Tensor, Tensor]:
        output, (h_n,) = self._run(input, None if hx is None else (hx,), lengths)
        return output, h_n
