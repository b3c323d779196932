"""Scaled dot-product attention and multi-head attention, the core of the Transformer.

Every position of a sequence asks a question (its *query*), offers a description of
itself (its *key*) and carries content to hand out (its *value*). The output at a
position is the average of the values weighted by how well its query matches every
key (Vaswani et al., 2017):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V,

with ``Q: (L_q, d_k)``, ``K: (L_k, d_k)``, ``V: (L_k, d_v)``. Dividing by ``sqrt(d_k)``
keeps the scores of unit-variance vectors at unit variance whatever ``d_k`` is, so the
softmax does not saturate. A boolean mask (True = may attend) removes keys a query must
not see: the future in a language model (:func:`causal_mask`), padding in a batch
(:func:`padding_attention_mask`).

:class:`MultiHeadAttention` projects its input to ``n_heads`` sets of queries, keys and
values of size ``d_head = d_model / n_heads``, attends in each head independently,
concatenates the heads and projects back:

    head_i = Attention(X W^Q_i, C W^K_i, C W^V_i),
    MultiHead(X, C) = [head_1; ...; head_h] W^O,

where the context ``C`` is ``X`` itself (self-attention) or another sequence, such as
an encoder's output (cross-attention). With grouped-query attention (Ainslie et al.,
2023) there are only ``n_kv_heads`` key-value heads, each shared by
``n_heads / n_kv_heads`` consecutive query heads (multi-query attention, Shazeer 2019,
is ``n_kv_heads = 1``): the result equals multi-head attention whose key and value
heads are repeated (:func:`repeat_kv`), with a key-value cache ``n_heads / n_kv_heads``
times smaller.

Two paths compute the same thing. :func:`scaled_dot_product_attention` is the formula
written out; it returns the ``(L_q, L_k)`` weights too, for plots. The module uses
PyTorch's fused ``F.scaled_dot_product_attention`` (which never materialises the
weights when it can avoid it) unless asked to record the weights
(``record_weights = True``, or :func:`record_attention` for a whole model); the two
paths agree to rounding, and the tests check it.

A key-value cache (:mod:`llmcourse.modules.kv_cache`) lets a decoder read only new
positions: ``forward(x, cache=layer_cache)`` appends the new keys and values and
attends over everything cached.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import check_int, check_probability, describe
from llmcourse.modules.kv_cache import LayerKVCache
from llmcourse.modules.positional import RotaryEmbedding


def causal_mask(n: int, past: int = 0, device: torch.device | str | None = None) -> Tensor:
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
    check_int("n", n)
    check_int("past", past, minimum=0)
    return torch.ones(n, past + n, dtype=torch.bool, device=device).tril(diagonal=past)


def padding_attention_mask(padding_mask: Tensor) -> Tensor:
    """``(batch, time)`` bool, True at real tokens -> ``(batch, 1, 1, time)``: every query
    (every head) may attend to the real tokens of its sequence only."""
    if (
        not isinstance(padding_mask, Tensor)
        or padding_mask.dtype != torch.bool
        or padding_mask.ndim != 2
    ):
        raise ValueError(
            "padding_mask must be a (batch, time) bool tensor, True at real tokens, "
            f"got {describe(padding_mask)}"
        )
    return padding_mask[:, None, None, :]


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


def check_mask_shape(mask: object, scores_shape: tuple[int, ...]) -> None:
    """Raise unless ``mask`` is a bool tensor that broadcasts to ``scores_shape``
    (metadata only: free on every forward pass)."""
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


def check_mask(mask: object, scores_shape: tuple[int, ...]) -> None:
    """:func:`check_mask_shape`, and every query row must see at least one key (a row
    without keys would give 0/0 = NaN weights). Reads the mask's contents."""
    check_mask_shape(mask, scores_shape)
    if not mask.any(dim=-1).all():
        raise ValueError("every query needs at least one key it may attend to (a row of the mask)")


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout: float = 0.0
) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T / sqrt(d_k)) v``, written out, with the keys where ``mask`` is
    False removed.

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
    check_probability("dropout", dropout)
    if mask is not None:
        check_mask(mask, (*batch_shape, q.shape[-2], k.shape[-2]))
    return _attend(q, k, v, mask, dropout)


def _attend(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout: float
) -> tuple[Tensor, Tensor]:
    """The formula of :func:`scaled_dot_product_attention`, on checked arguments."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
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


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """``(batch, n_kv_heads, length, d_head)`` -> ``(batch, n_kv_heads * n_rep, length,
    d_head)``: each key-value head repeated for the ``n_rep`` query heads that share it
    (head ``i`` of the result is head ``i // n_rep`` of ``x``)."""
    check_int("n_rep", n_rep)
    if x.ndim != 4:
        raise ValueError(f"expected (batch, n_kv_heads, length, d_head), got {tuple(x.shape)}")
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


def fused_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout: float, gqa: bool
) -> Tensor:
    """``F.scaled_dot_product_attention`` on ``(batch, heads, L, d_head)`` queries and
    ``(batch, kv_heads, L_k, d_head)`` keys and values (``gqa``: fewer kv heads).

    On the CPU, PyTorch's fused attention kernel is more than twice as slow in bfloat16 as
    in float32 (its backward pass most of all; ``benchmarks/training_throughput.py``
    measures it), so under bf16 autocast the attention itself runs in float32 and its
    output returns to bfloat16: the matrix products around it keep bf16's speed.
    """
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        with torch.autocast("cpu", enabled=False):  # autocast would cast back to bf16
            out = F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=mask, dropout_p=dropout, enable_gqa=gqa
            )
        return out.to(torch.bfloat16)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout, enable_gqa=gqa
    )


class MultiHeadAttention(nn.Module):
    """Multi-head (or grouped-query) attention: project, split into heads, attend,
    concatenate, project.

    Args:
        d_model: size of the input and output vectors; divisible by ``n_heads``.
        n_heads: number of query heads, each of size ``d_head = d_model / n_heads``.
        bias: give the four projections a bias.
        dropout: dropout on the attention weights while training.
        rope: rotate each head's queries and keys by their positions (rotary position
            embeddings, :class:`~llmcourse.modules.positional.RotaryEmbedding`);
            self-attention only.
        n_kv_heads: key-value heads, dividing ``n_heads``; None means ``n_heads``
            (multi-head attention), 1 is multi-query attention.
        rope_theta: the rotary base ``theta`` (``w_i = theta^(-2i/d_head)``).
        max_positions: positions whose rotary angles are precomputed (the context
            length); later positions are computed on the fly.
        record_weights: compute the weights with :func:`scaled_dot_product_attention`
            and keep the last ones in ``last_weights`` (detached,
            ``(batch, n_heads, L_q, L_k)``), for plots; otherwise the fused kernel runs
            and nothing of size ``L_q x L_k`` is kept.

    Parameters: ``w_q: nn.Linear(d_model, d_model)``, ``w_k`` and ``w_v:
    nn.Linear(d_model, n_kv_heads * d_head)``, ``w_o: nn.Linear(d_model, d_model)``.
    ``w_q.weight`` is ``(W^Q)^T``: its rows ``i d_head .. (i + 1) d_head - 1`` are head
    ``i``'s ``(W^Q_i)^T``; likewise for keys and values.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        bias: bool = True,
        dropout: float = 0.0,
        rope: bool = False,
        n_kv_heads: int | None = None,
        rope_theta: float = 10000.0,
        max_positions: int = 0,
        record_weights: bool = False,
    ) -> None:
        super().__init__()
        check_int("d_model", d_model)
        check_int("n_heads", n_heads)
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        check_int("n_kv_heads", n_kv_heads)
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if n_heads % n_kv_heads:
            raise ValueError(f"n_kv_heads ({n_kv_heads}) must divide n_heads ({n_heads})")
        check_probability("dropout", dropout)
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.n_kv_heads = n_kv_heads
        self.dropout = dropout
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, n_kv_heads * self.d_head, bias=bias)
        self.w_v = nn.Linear(d_model, n_kv_heads * self.d_head, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)
        self.rope = RotaryEmbedding(self.d_head, rope_theta, max_positions) if rope else None
        self.record_weights = record_weights
        self.last_weights: Tensor | None = None

    def _check_inputs(self, x: Tensor, context: Tensor | None, cache: LayerKVCache | None) -> None:
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (batch, length, {self.d_model}), got {describe(x)}")
        if context is None:
            return
        if cache is not None:
            raise ValueError("a cache holds self-attention keys and values; context must be None")
        if self.rope is not None:
            raise ValueError("rotary embeddings apply to self-attention only; context must be None")
        if context.ndim != 3 or context.shape[0] != x.shape[0] or context.shape[2] != self.d_model:
            raise ValueError(
                f"context must be (batch={x.shape[0]}, length, {self.d_model}), "
                f"got {tuple(context.shape)}"
            )

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        cache: LayerKVCache | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """Attend from ``x`` over ``context`` (over ``x`` itself when ``context`` is None).

        Args:
            x: ``(batch, L_q, d_model)``, the sequence that asks (queries).
            context: ``(batch, L_k, d_model)``, the sequence attended to (keys and values);
                None for self-attention.
            mask: bool, broadcastable to ``(batch, n_heads, L_q, L_k)``, True = may attend:
                ``causal_mask(L)`` of shape ``(L, L)``, or a padding mask ``(batch, 1, 1, L_k)``.
                Every query must see at least one key (not checked here: that would read
                the mask on every call).
            cache: self-attention only. ``x`` is then the positions
                ``P .. P + L_q - 1`` that follow the ``P = cache.length`` cached ones: their
                keys and values are appended to the cache, the queries attend over all
                ``L_k = P + L_q`` positions (``mask``, e.g. ``causal_mask(L_q, past=P)``,
                is ``(L_q, L_k)``), and rotary embeddings use the positions from ``P`` on.
            positions: rotary positions of the rows of ``x``, ``(L_q,)`` shared by the
                batch or ``(batch, L_q)`` per sequence (e.g. after left padding); None
                means ``P .. P + L_q - 1``.

        Returns:
            ``(batch, L_q, d_model)``.
        """
        self._check_inputs(x, context, cache)
        source = x if context is None else context
        q = split_heads(self.w_q(x), self.n_heads)  # (batch, heads, L_q, d_head)
        k = split_heads(self.w_k(source), self.n_kv_heads)  # (batch, kv_heads, L_k, d_head)
        v = split_heads(self.w_v(source), self.n_kv_heads)
        if self.rope is not None:
            start = 0 if cache is None else cache.length
            q, k = self.rope(q, positions, start), self.rope(k, positions, start)
        if cache is not None:
            k, v = cache.append(k, v)  # (batch, kv_heads, P + L_q, d_head)
        dropout = self.dropout if self.training else 0.0
        if mask is not None:
            check_mask_shape(mask, (x.shape[0], self.n_heads, x.shape[1], k.shape[2]))
        if self.record_weights:
            n_rep = self.n_heads // self.n_kv_heads
            k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
            heads, weights = _attend(q, k, v, mask, dropout)
            self.last_weights = weights.detach()
        else:
            heads = fused_attention(q, k, v, mask, dropout, self.n_kv_heads != self.n_heads)
        return self.w_o(merge_heads(heads))

    def extra_repr(self) -> str:
        kv = f", n_kv_heads={self.n_kv_heads}" if self.n_kv_heads != self.n_heads else ""
        return f"d_model={self.d_model}, n_heads={self.n_heads}{kv}"


@contextlib.contextmanager
def record_attention(model: nn.Module) -> Iterator[list[MultiHeadAttention]]:
    """Within the block, every :class:`MultiHeadAttention` of ``model`` records its
    weights (``last_weights``, read them after the forward pass); yields those layers in
    module order. Their previous setting is restored on exit; the weights stay."""
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    before = [layer.record_weights for layer in layers]
    try:
        for layer in layers:
            layer.record_weights = True
        yield layers
    finally:
        for layer, setting in zip(layers, before, strict=True):
            layer.record_weights = setting
