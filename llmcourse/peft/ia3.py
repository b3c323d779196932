"""IA³: trained vectors that rescale keys, values and feed-forward activations (Liu et al.,
2022).

"Infused Adapter by Inhibiting and Amplifying Inner Activations" multiplies three kinds of
inner activations, element by element, by trained vectors that start at 1: the keys and
the values of every attention layer, ``l_k * (W_K x)`` and ``l_v * (W_V x)``, and the
hidden activations of every feed-forward network, ``W_2 (l_ff * act(W_1 x))``. A layer
gets ``2 k + d_ff`` numbers (``k`` is the width of its keys), fewer than LoRA of rank 1.
Each vector can be folded into the weight it follows or precedes after training, so
IA³, like LoRA, adds no latency.

:func:`apply_ia3` wraps the chosen linear layers of a model: those whose *output* is
scaled (the key and value projections) in :class:`ScaleOutput`, those whose *input* is
scaled (the feed-forward network's second layer) in :class:`ScaleInput`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from llmcourse.peft.lora import select_linear_layers
from llmcourse.peft.trainable import freeze


class ScaleOutput(nn.Module):
    """``linear(x) * scale``, with ``scale: (out_features,)`` trained, starting at 1."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.scale = nn.Parameter(torch.ones(linear.out_features, device=linear.weight.device))

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x) * self.scale


class ScaleInput(nn.Module):
    """``linear(x * scale)``, with ``scale: (in_features,)`` trained, starting at 1."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.scale = nn.Parameter(torch.ones(linear.in_features, device=linear.weight.device))

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x * self.scale)


def apply_ia3(
    model: nn.Module,
    scale_outputs: Sequence[str] = ("attn.w_k", "attn.w_v"),
    scale_inputs: Sequence[str] = ("ffn.down",),
) -> list[str]:
    """Wrap the linear layers of ``model`` named by ``scale_outputs`` in
    :class:`ScaleOutput` and those named by ``scale_inputs`` in :class:`ScaleInput`, in
    place, and freeze every other parameter.

    Names follow :func:`llmcourse.peft.lora.matches`; the defaults are IA³'s keys,
    values and feed-forward activations in a :class:`~llmcourse.models.GPT`.

    Returns:
        The names of the wrapped layers.

    Raises:
        ValueError: a name that matches no linear layer.
    """
    outputs = select_linear_layers(model, scale_outputs) if scale_outputs else []
    inputs = select_linear_layers(model, scale_inputs) if scale_inputs else []
    if not outputs and not inputs:
        raise ValueError("give at least one layer name to scale_outputs or scale_inputs")
    if set(outputs) & set(inputs):
        raise ValueError(f"a layer cannot be scaled twice: {sorted(set(outputs) & set(inputs))}")
    freeze(model)
    for name in outputs:
        model.set_submodule(name, ScaleOutput(model.get_submodule(name)))
    for name in inputs:
        model.set_submodule(name, ScaleInput(model.get_submodule(name)))
    return outputs + inputs
