"""Our recurrent modules and PyTorch's: the same parameters, copied across.

The cells and layers of :mod:`llmcourse.classic.rnn` store each layer's four tensors with
the shapes and names of ``torch.nn`` (``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``) and the gates in torch's order (LSTM ``i, f, g, o``, GRU ``r, z, n``), so
a torch module's weights load into ours one tensor per parameter: torch's ``weight_ih_l{l}``
(``_reverse`` for the backward direction) becomes ``cells[l * D + d].weight_ih``. This
is what the parity tests and Chapter 3 use to run both on the same weights.
"""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.classic.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

Module = RNNCell | LSTMCell | GRUCell | RNN | LSTM | GRU


def torch_parameter_name(name: str, layer: int, reverse: bool) -> str:
    """The name torch gives a layer's parameter: ``weight_ih`` of layer 1, backward ->
    ``weight_ih_l1_reverse``."""
    return f"{name}_l{layer}" + ("_reverse" if reverse else "")


def load_torch_weights(module: Module, reference: nn.Module) -> Module:
    """Copy the weights of a torch module into ours, in place, and return ours.

    ``reference`` is an ``nn.RNNCell``, ``nn.LSTMCell``, ``nn.GRUCell``, ``nn.RNN``,
    ``nn.LSTM`` or ``nn.GRU`` with the same configuration as ``module``. Both store a
    layer's four tensors with the same shapes and the gates in the same order, so the copy is one
    tensor per parameter: torch's ``weight_ih_l{l}`` (``_reverse`` for the backward
    direction) becomes ``cells[l * D + d].weight_ih``.

    Raises:
        ValueError: a reference of another kind or configuration, or a feature we do not
            implement (``proj_size``, ``dropout`` between layers).
    """
    pairs = {
        RNNCell: nn.RNNCell,
        LSTMCell: nn.LSTMCell,
        GRUCell: nn.GRUCell,
        RNN: nn.RNN,
        LSTM: nn.LSTM,
        GRU: nn.GRU,
    }
    expected = pairs.get(type(module))
    if expected is None or type(reference) is not expected:
        raise ValueError(f"cannot load a {type(reference).__name__} into a {type(module).__name__}")
    config = ["input_size", "hidden_size", "bias"]
    if isinstance(module, RNN | LSTM | GRU):
        if getattr(reference, "proj_size", 0):
            raise ValueError("proj_size is not supported")
        if reference.dropout:
            raise ValueError("dropout between layers is not supported")
        config += ["num_layers", "batch_first", "bidirectional"]
    if isinstance(module, RNNCell | RNN):
        config.append("nonlinearity")
    for attribute in config:
        ours, theirs = getattr(module, attribute), getattr(reference, attribute)
        if ours != theirs:
            raise ValueError(f"{attribute} differs: {ours!r} here, {theirs!r} in the reference")
    source = dict(reference.named_parameters())
    with torch.no_grad():
        if isinstance(module, RNNCell | LSTMCell | GRUCell):
            for name, p in module.named_parameters():
                p.copy_(source[name])
            return module
        for k, cell in enumerate(module.cells):
            layer, direction = divmod(k, module.num_directions)
            for name, p in cell.named_parameters():
                p.copy_(source[torch_parameter_name(name, layer, direction == 1)])
    return module


def from_torch(reference: nn.Module) -> Module:
    """A new module of ours with the configuration and weights of a torch RNN, LSTM or GRU
    (cell or layer)."""
    cells = {nn.RNNCell: RNNCell, nn.LSTMCell: LSTMCell, nn.GRUCell: GRUCell}
    layers = {nn.RNN: RNN, nn.LSTM: LSTM, nn.GRU: GRU}
    if type(reference) in cells:
        kwargs = {"bias": reference.bias}
        if type(reference) is nn.RNNCell:
            kwargs["nonlinearity"] = reference.nonlinearity
        cell_type = cells[type(reference)]
        module = cell_type(reference.input_size, reference.hidden_size, **kwargs)
    elif type(reference) in layers:
        kwargs = {
            "num_layers": reference.num_layers,
            "bias": reference.bias,
            "batch_first": reference.batch_first,
            "bidirectional": reference.bidirectional,
        }
        if type(reference) is nn.RNN:
            kwargs["nonlinearity"] = reference.nonlinearity
        layer_type = layers[type(reference)]
        module = layer_type(reference.input_size, reference.hidden_size, **kwargs)
    else:
        raise ValueError(
            "expected nn.RNNCell, nn.LSTMCell, nn.GRUCell, nn.RNN, nn.LSTM or nn.GRU, got "
            f"{type(reference).__name__}"
        )
    module = module.to(next(reference.parameters()).dtype)
    return load_torch_weights(module, reference)
