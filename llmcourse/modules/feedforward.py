"""The position-wise feed-forward network of a Transformer block, in its two common forms.

Attention mixes information across positions; the feed-forward network then transforms
each position on its own. GPT-2 and BERT use a two-layer MLP with a GELU (Hendrycks and
Gimpel, 2016) between the layers (:class:`FeedForward`)::

    FFN(x) = W_2 GELU(W_1 x + b_1) + b_2,          d_model -> d_ff -> d_model.

Llama-style models use a gated linear unit (Shazeer, 2020), SwiGLU
(:class:`SwiGLU`): a second projection ``W_3 x`` gates the activated one,
element by element, without biases::

    SwiGLU(x) = W_2 (SiLU(W_1 x) * W_3 x),         SiLU(z) = z sigmoid(z).

It has three matrices instead of two, so a SwiGLU network with hidden size ``2/3 *
4 d_model`` has the parameters of a GELU MLP with ``4 d_model`` (Touvron et al., 2023,
round it up to a multiple of 256). :func:`silu` is the activation written out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import check_choice, check_int, check_probability

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


def silu(z: Tensor) -> Tensor:
    """The sigmoid-weighted linear unit ``z * sigmoid(z)`` (also called swish), element-wise."""
    return z * torch.sigmoid(z)


class FeedForward(nn.Module):
    """The position-wise network ``down(activation(up(x)))``: ``d_model -> d_ff -> d_model``.

    Args:
        d_model: input and output size.
        d_ff: hidden size (usually ``4 * d_model``).
        bias: biases in both linear layers.
        activation: ``"gelu"`` or ``"relu"``.
        dropout: dropout on the hidden layer while training.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        bias: bool = True,
        activation: str = "gelu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_int("d_model", d_model)
        check_int("d_ff", d_ff)
        check_choice("activation", activation, ACTIVATIONS)
        check_probability("dropout", dropout)
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.down = nn.Linear(d_ff, d_model, bias=bias)
        self.activation = ACTIVATIONS[activation]
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (..., d_model)`` -> ``(..., d_model)``; each position independently."""
        return self.down(self.drop(self.activation(self.up(x))))


class SwiGLU(nn.Module):
    """The gated network ``down(SiLU(gate(x)) * up(x))``, with no biases.

    Args:
        d_model: input and output size.
        d_ff: hidden size (the width of ``gate`` and ``up``).
        dropout: dropout on the hidden layer while training.

    Parameters: ``gate`` (``W_1``) and ``up`` (``W_3``), ``nn.Linear(d_model, d_ff)``;
    ``down`` (``W_2``), ``nn.Linear(d_ff, d_model)``.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        check_int("d_model", d_model)
        check_int("d_ff", d_ff)
        check_probability("dropout", dropout)
        self.gate = nn.Linear(d_model, d_ff, bias=False)
        self.up = nn.Linear(d_model, d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (..., d_model)`` -> ``(..., d_model)``; each position independently."""
        return self.down(self.drop(F.silu(self.gate(x)) * self.up(x)))
