"""Bottleneck adapters inserted after the sublayers of a Transformer (Houlsby et al., 2019).

An adapter is a small network with a residual connection: project the ``d_model``
vector down to a ``bottleneck`` of ``r`` numbers, apply a nonlinearity, project back up,
and add the result to the input::

    adapter(h) = h + W_up sigma(W_down h + b_down) + b_up,
    W_down: (r, d_model),  W_up: (d_model, r).

Houlsby et al. put one after the attention sublayer and one after the feed-forward
sublayer of every block, on the sublayer's output before it joins the residual stream:
``x + Adapter(Sublayer(Norm(x)))`` in a pre-norm block. Only the adapters (and the task's
head) are trained; the pretrained model is frozen and shared by every task.

``W_up`` and ``b_up`` start at zero, so every adapter starts as the identity and the
adapted model starts as the pretrained one (Houlsby et al. start near the identity).

Each adapter has ``2 d r + d + r`` parameters (two matrices and two bias vectors); two
per block give :func:`adapter_parameter_count` ``= 2 L (2 d r + d + r)`` for ``L``
blocks. Unlike LoRA, adapters cannot be merged into the weights: the extra layers cost
time at inference, sequentially after each sublayer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import check_choice, check_int
from llmcourse.modules.transformer import TransformerBlock
from llmcourse.peft.trainable import freeze

ADAPTER_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}
SUBLAYERS = ("attn", "ffn")


class BottleneckAdapter(nn.Module):
    """``h + up(activation(down(h)))``: ``(..., d_model) -> (..., d_model)``.

    Args:
        d_model: the size of the vectors it adapts.
        bottleneck: ``r``, the size of the hidden layer.
        activation: ``"gelu"`` or ``"relu"``.

    Parameters: ``down: nn.Linear(d_model, bottleneck)`` (PyTorch's default
    initialisation) and ``up: nn.Linear(bottleneck, d_model)`` (zeros: the adapter starts
    as the identity).
    """

    def __init__(self, d_model: int, bottleneck: int, activation: str = "gelu") -> None:
        super().__init__()
        check_int("d_model", d_model)
        check_int("bottleneck", bottleneck)
        check_choice("activation", activation, ADAPTER_ACTIVATIONS)
        self.down = nn.Linear(d_model, bottleneck)
        self.up = nn.Linear(bottleneck, d_model)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.activation = ADAPTER_ACTIVATIONS[activation]

    def forward(self, h: Tensor) -> Tensor:
        return h + self.up(self.activation(self.down(h)))


class AdaptedSublayer(nn.Module):
    """A sublayer followed by an adapter: ``adapter(sublayer(*args, **kwargs))``. It takes
    the sublayer's arguments (an attention layer's mask, cache and positions pass
    through)."""

    def __init__(self, sublayer: nn.Module, adapter: BottleneckAdapter) -> None:
        super().__init__()
        self.sublayer, self.adapter = sublayer, adapter

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.adapter(self.sublayer(*args, **kwargs))


def add_adapters(
    model: nn.Module,
    bottleneck: int,
    sublayers: Sequence[str] = SUBLAYERS,
    activation: str = "gelu",
) -> list[BottleneckAdapter]:
    """Put a :class:`BottleneckAdapter` after the named sublayers of every
    :class:`~llmcourse.modules.transformer.TransformerBlock` of ``model``, in place, and
    freeze every other parameter of ``model``.

    Args:
        model: a model made of Transformer blocks (a GPT, a BERT ...).
        bottleneck: the adapters' hidden size ``r``.
        sublayers: which sublayers of each block: ``"attn"`` (self-attention), ``"ffn"``
            (the feed-forward network), or both (Houlsby et al.'s placement).
        activation: the adapters' nonlinearity.

    Returns:
        The new adapters, block by block.

    Raises:
        ValueError: a bad size or sublayer name, or a model without Transformer blocks.
    """
    check_int("bottleneck", bottleneck)
    if isinstance(sublayers, str) or not sublayers:
        raise ValueError(f"sublayers must be a non-empty list of {SUBLAYERS}, got {sublayers!r}")
    for name in sublayers:
        check_choice("sublayer", name, SUBLAYERS)
    blocks = [m for m in model.modules() if isinstance(m, TransformerBlock)]
    if not blocks:
        raise ValueError("the model has no TransformerBlock to put adapters in")
    freeze(model)
    adapters = []
    for block in blocks:
        for name in sublayers:
            sublayer = getattr(block, name)
            device = next(sublayer.parameters()).device
            adapter = BottleneckAdapter(block.ffn_norm.d_model, bottleneck, activation)
            adapters.append(adapter.to(device))
            setattr(block, name, AdaptedSublayer(sublayer, adapter))
    return adapters


def adapter_parameter_count(
    d_model: int, bottleneck: int, n_layers: int, per_block: int = 2
) -> int:
    """The parameters of ``per_block`` adapters in each of ``n_layers`` blocks:
    ``per_block * L * (2 d r + d + r)`` (down and up matrices, and their biases)."""
    for name, value in (("d_model", d_model), ("bottleneck", bottleneck), ("n_layers", n_layers)):
        check_int(name, value)
    check_int("per_block", per_block)
    return per_block * n_layers * (2 * d_model * bottleneck + d_model + bottleneck)
