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

A decoder that generates one token at a time would recompute, at every step, the keys
and values of every earlier position, although a causal model never changes them. A
key-value cache keeps them instead: :class:`LayerKVCache` holds one self-attention
layer's keys and values ``(batch, n_heads, time, d_head)``, and :class:`KVCache` one
per layer of a stack. ``MultiHeadAttention.forward(x, cache=cache)`` then reads only
the new positions ``x``, appends their keys and values to the cache and attends over
everything cached; with rotary embeddings, the new positions are numbered from
``cache.length`` on. The mask of such a step is ``causal_mask(new, past=cache.length)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.positional import RotaryEmbedding


def causal_mask(n: int, past: int = 0) -> Tensor:
    """The bool mask of a left-to-right model: query ``i`` may see key ``j <= i``.

    With ``past > 0`` the ``n`` queries are the last of ``past + n`` positions, the
    first ``past`` of which are already in a key-value cache: the mask is
    ``(n, past + n)`` and query ``i``, at position ``past + i``, sees keys
    ``j <= past + i``.

    >>> causal_mask(3).int()
    tensor([[1, 0, 0],
            [1, 1, 0],
            [1, 1, 1]], dtype=torch.int32)
    >>> causal_mask(2, past=2).int()
    tensor([[1, 1, 1, 0],
            [1, 1, 1, 1]], dtype=torch.int32)
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not isinstance(past, int) or isinstance(past, bool) or past < 0:
        raise ValueError(f"past must be an integer >= 0, got {past!r}")
    return torch.ones(n, past + n, dtype=torch.bool).tril(diagonal=past)


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


class LayerKVCache:
    """The keys and values one self-attention layer has computed so far.

    ``keys`` and ``values`` are ``(batch, n_heads, length, d_head)``, or None before the
    first :meth:`append`. Positions are stored in order: row ``t`` of the time axis is
    position ``t`` of the sequence.
    """

    def __init__(self) -> None:
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    @property
    def length(self) -> int:
        """The number of positions stored."""
        return 0 if self.keys is None else self.keys.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the keys and values of the next positions; return all of them.

        Args:
            k: ``(batch, n_heads, new, d_head)`` keys of positions ``length .. length + new - 1``.
            v: ``(batch, n_heads, new, d_head)`` their values.

        Returns:
            ``(keys, values)``, each ``(batch, n_heads, length + new, d_head)``.
        """
        if k.ndim != 4 or k.shape != v.shape:
            raise ValueError(
                "k and v must both be (batch, n_heads, new, d_head), got "
                f"{tuple(k.shape)} and {tuple(v.shape)}"
            )
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            stored = self.keys.shape
            if k.shape[:2] != stored[:2] or k.shape[3] != stored[3]:
                raise ValueError(
                    f"the cache holds keys (batch, n_heads, time, d_head) = {tuple(stored)}; "
                    f"new keys {tuple(k.shape)} do not match"
                )
            self.keys = torch.cat([self.keys, k], dim=2)
            self.values = torch.cat([self.values, v], dim=2)
        return self.keys, self.values

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` positions, ``0 <= length <= self.length`` (a rollback)."""
        if (
            not isinstance(length, int)
            or isinstance(length, bool)
            or not 0 <= length <= self.length
        ):
            raise ValueError(f"length must be an integer in [0, {self.length}], got {length!r}")
        if self.keys is not None:
            self.keys = self.keys[:, :, :length]
            self.values = self.values[:, :, :length]

    def reorder(self, index: Tensor) -> None:
        """Replace the batch by its rows ``index: (new_batch,)`` long (rows may repeat): how
        beam search keeps the cache of the hypotheses it extends."""
        if self.keys is None:
            return
        if index.dtype != torch.long or index.ndim != 1:
            raise ValueError(
                f"index must be a 1-D long tensor, got {index.dtype} {tuple(index.shape)}"
            )
        batch = self.keys.shape[0]
        if len(index) and not 0 <= int(index.min()) <= int(index.max()) < batch:
            raise ValueError(f"index must hold rows in [0, {batch}), got {index.tolist()}")
        self.keys, self.values = self.keys[index], self.values[index]


class KVCache:
    """A :class:`LayerKVCache` for each of ``n_layers`` self-attention layers.

    Between forward passes every layer holds the same positions; :attr:`length` is
    their number. ``truncate`` and ``reorder`` act on every layer.
    """

    def __init__(self, n_layers: int) -> None:
        if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers < 1:
            raise ValueError(f"n_layers must be an integer >= 1, got {n_layers!r}")
        self.layers = [LayerKVCache() for _ in range(n_layers)]

    @property
    def length(self) -> int:
        """The number of positions stored (in every layer)."""
        return self.layers[0].length

    @property
    def batch_size(self) -> int | None:
        """The number of sequences cached; None while the cache is empty."""
        keys = self.layers[0].keys
        return None if keys is None else keys.shape[0]

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on, ``0 <= length <= self.length``."""
        for layer in self.layers:
            layer.truncate(length)

    def reorder(self, index: Tensor) -> None:
        """Keep the sequences ``index: (new_batch,)`` long, in that order (rows may repeat)."""
        for layer in self.layers:
            layer.reorder(index)

    def __repr__(self) -> str:
        return f"KVCache(n_layers={len(self.layers)}, length={self.length})"


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
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        cache: LayerKVCache | None = None,
    ) -> Tensor:
        """Attend from ``x`` over ``context`` (over ``x`` itself when ``context`` is None).

        Args:
            x: ``(batch, L_q, d_model)``, the sequence that asks (queries).
            context: ``(batch, L_k, d_model)``, the sequence attended to (keys and values);
                None for self-attention.
            mask: bool, broadcastable to ``(batch, n_heads, L_q, L_k)``, True = may attend:
                ``causal_mask(L)`` of shape ``(L, L)``, or a padding mask ``(batch, 1, 1, L_k)``.
            cache: self-attention only. ``x`` is then the positions
                ``P .. P + L_q - 1`` that follow the ``P = cache.length`` cached ones: their
                keys and values are appended to the cache, the queries attend over all
                ``L_k = P + L_q`` positions (``mask``, e.g. ``causal_mask(L_q, past=P)``,
                is ``(L_q, L_k)``), and rotary embeddings use the positions from ``P`` on.

        Returns:
            ``(batch, L_q, d_model)``.
        """
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (batch, length, {self.d_model}), got {tuple(x.shape)}")
        if cache is not None and context is not None:
            raise ValueError("a cache holds self-attention keys and values; context must be None")
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
            start = 0 if cache is None else cache.length
            positions = torch.arange(start, start + x.shape[1], device=x.device)
            q, k = self.rope(q, positions), self.rope(k, positions)
        if cache is not None:
            k, v = cache.append(k, v)  # (batch, heads, P + L_q, d_head)
        dropout = self.dropout if self.training else 0.0
        heads, weights = scaled_dot_product_attention(q, k, v, mask, dropout=dropout)
        self.last_weights = weights.detach()
        return self.w_o(merge_heads(heads))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}"
