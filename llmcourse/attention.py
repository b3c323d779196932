"""Scaled dot-product attention and multi-head attention, the core of the Transformer.

Every position of a sequence asks a question (its *query*), offers a description of
itself (its *key*) and carries content to hand out (its *value*). The output at a
position is the average of the values weighted by how well its query matches every
key (Vaswani et al., 2017):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V,

with ``Q: (L_q, d_k)``, ``K: (L_k, d_k)``, ``V: (L_k, d_v)``. Dividing by ``sqrt(d_k)``
keeps the scores of unit-variance vectors at unit variance whatever ``d_k`` is, so the
softmax does not saturate. A boolean mask (True = may attend) removes keys a query must
not see: the future in a language model (:func:`causal_mask`), padding in a batch.

:class:`MultiHeadAttention` projects its input to ``n_heads`` sets of queries, keys and
values of size ``d_model / n_heads``, attends in each head independently, concatenates
the heads and projects back:

    head_i = Attention(X W^Q_i, C W^K_i, C W^V_i),
    MultiHead(X, C) = [head_1; ...; head_h] W^O,

where the context ``C`` is ``X`` itself (self-attention) or another sequence, such as
an encoder's output (cross-attention).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.positional import RotaryEmbedding


def causal_mask(n: int) -> Tensor:
    """The ``(n, n)`` bool mask of a left-to-right model: query ``i`` may see key ``j <= i``.

    >>> causal_mask(3).int()
    tensor([[1, 0, 0],
            [1, 1, 0],
            [1, 1, 1]], dtype=torch.int32)
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return torch.ones(n, n, dtype=torch.bool).tril()


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> tuple[int, ...]:
    """Validate the shapes of ``q, k, v``; return the broadcast batch shape."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.ndim < 2 or not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor (..., length, dim)")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same last dimension d_k, got {q.shape[-1]} and {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same length L_k, got {k.shape[-2]} and {v.shape[-2]}"
        )
    try:
        return tuple(torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))
    except RuntimeError:
        raise ValueError(
            "the leading (batch) dimensions of q, k and v do not broadcast: "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        ) from None


def check_mask(mask: Tensor, scores_shape: tuple[int, ...]) -> None:
    """Raise unless ``mask`` is bool, broadcasts to ``scores_shape`` and lets every query
    row see at least one key (a row without keys would give 0/0 = NaN weights)."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"the mask must be a bool tensor (True = may attend), got {got}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(
            f"the mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"{tuple(scores_shape)} (..., L_q, L_k)"
        )
    if not mask.any(dim=-1).all():
        raise ValueError("every query needs at least one key it may attend to (a row of the mask)")


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout: float = 0.0
) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T / sqrt(d_k)) v``, with the keys where ``mask`` is False removed.

    Args:
        q: ``(..., L_q, d_k)`` queries.
        k: ``(..., L_k, d_k)`` keys.
        v: ``(..., L_k, d_v)`` values; the leading dimensions of the three broadcast.
        mask: bool, broadcastable to ``(..., L_q, L_k)``; True where query ``i`` may
            attend to key ``j``. Every query must be allowed at least one key.
        dropout: probability of zeroing an attention weight (the survivors are scaled by
            ``1 / (1 - dropout)``); applied to the output only, not to the returned weights.

    Returns:
        ``output: (..., L_q, d_v)`` and ``weights: (..., L_q, L_k)``, the softmax weights:
        each row sums to 1, and masked entries are exactly 0.
    """
    batch_shape = _check_qkv(q, k, v)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        check_mask(mask, (*batch_shape, q.shape[-2], k.shape[-2]))
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    output = F.dropout(weights, dropout) @ v if dropout else weights @ v
    return output, weights


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """``(batch, length, n_heads * d_head)`` -> ``(batch, n_heads, length, d_head)``."""
    if x.ndim != 3 or x.shape[-1] % n_heads:
        raise ValueError(
            f"expected (batch, length, d) with d divisible by {n_heads}, got {tuple(x.shape)}"
        )
    batch, length, d = x.shape
    return x.view(batch, length, n_heads, d // n_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``(batch, n_heads, length, d_head)`` -> ``(batch, length, n_heads * d_head)``."""
    if x.ndim != 4:
        raise ValueError(f"expected (batch, n_heads, length, d_head), got {tuple(x.shape)}")
    batch, n_heads, length, d_head = x.shape
    return x.transpose(1, 2).reshape(batch, length, n_heads * d_head)


class MultiHeadAttention(nn.Module):
    """Multi-head attention: project, split into heads, attend, concatenate, project.

    Args:
        d_model: size of the input and output vectors; divisible by ``n_heads``.
        n_heads: number of heads, each of size ``d_head = d_model / n_heads``.
        bias: give the four projections a bias.
        dropout: dropout on the attention weights while training.
        rope: rotate each head's queries and keys by their positions (rotary position
            embeddings, :class:`llmcourse.positional.RotaryEmbedding`); self-attention only.

    Parameters: ``w_q``, ``w_k``, ``w_v``, ``w_o``, each an ``nn.Linear(d_model, d_model)``.
    ``w_q.weight`` is ``(W^Q)^T``: its rows ``i d_head .. (i + 1) d_head - 1`` are head
    ``i``'s ``(W^Q_i)^T``; likewise for keys and values.

    After every forward pass, ``last_weights`` holds the attention weights
    ``(batch, n_heads, L_q, L_k)``, detached, for plotting.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        bias: bool = True,
        dropout: float = 0.0,
        rope: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("n_heads", n_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.dropout = dropout
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)
        self.rope = RotaryEmbedding(self.d_head) if rope else None
        self.last_weights: Tensor | None = None

    def forward(
        self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """Attend from ``x`` over ``context`` (over ``x`` itself when ``context`` is None).

        Args:
            x: ``(batch, L_q, d_model)``, the sequence that asks (queries).
            context: ``(batch, L_k, d_model)``, the sequence attended to (keys and values);
                None for self-attention.
            mask: bool, broadcastable to ``(batch, n_heads, L_q, L_k)``, True = may attend:
                ``causal_mask(L)`` of shape ``(L, L)``, or a padding mask ``(batch, 1, 1, L_k)``.

        Returns:
            ``(batch, L_q, d_model)``.
        """
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (batch, length, {self.d_model}), got {tuple(x.shape)}")
        if context is None:
            context = x
        elif self.rope is not None:
            raise ValueError("rotary embeddings apply to self-attention only; context must be None")
        elif (
            context.ndim != 3 or context.shape[0] != x.shape[0] or context.shape[2] != self.d_model
        ):
            raise ValueError(
                f"context must be (batch={x.shape[0]}, length, {self.d_model}), "
                f"got {tuple(context.shape)}"
            )
        q = split_heads(self.w_q(x), self.n_heads)  # (batch, heads, L_q, d_head)
        k = split_heads(self.w_k(context), self.n_heads)  # (batch, heads, L_k, d_head)
        v = split_heads(self.w_v(context), self.n_heads)
        if self.rope is not None:
            q, k = self.rope(q), self.rope(k)
        dropout = self.dropout if self.training else 0.0
        heads, weights = scaled_dot_product_attention(q, k, v, mask, dropout=dropout)
        self.last_weights = weights.detach()
        return self.w_o(merge_heads(heads))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}"
