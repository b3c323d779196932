"""The key-value cache of a decoder: what it stores, and how much memory that takes.

A causal model never revises the keys and values of earlier positions, so a decoder
that generates one token at a time can keep them instead of recomputing them at every
step (Chapter 8). :class:`LayerKVCache` holds one self-attention layer's keys and
values, ``(batch, n_kv_heads, length, d_head)`` each, in buffers allocated once for the
longest sequence (the model's context): appending a step writes the new positions in
place instead of copying the whole cache, so a step costs time proportional to the new
positions, not to the length so far. :class:`KVCache` holds one per layer of a stack.

Each cached position stores one key and one value vector of ``head_dim`` numbers per
key-value head, in every layer:

    bytes = 2 * n_layers * n_kv_heads * head_dim * seq_len * batch_size * bytes_per_value.

Multi-head attention has ``n_kv_heads == n_heads``; grouped-query attention (Ainslie et
al., 2023) shares each key-value head among several query heads, and multi-query
attention (Shazeer, 2019) keeps a single one. A sliding-window model keeps only the
last ``window`` positions. A hybrid cache (:mod:`llmcourse.modules.hybrid_memory`)
keeps a local window plus a compressed memory of fixed size.

The published shapes at the end are those of the models' papers and released
configurations (context = the training context length).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from llmcourse.checks import check_int, check_int_in


class LayerKVCache:
    """The keys and values one self-attention layer has computed so far.

    Args:
        capacity: the number of positions the buffers hold before they must grow (the
            model's context length); 0 allocates exactly what the first append needs.
            A cache that outgrows its buffers reallocates them with twice the room.

    The buffers are allocated at the first :meth:`append`, with its batch size, heads,
    head size, dtype and device. Positions are stored in order: row ``t`` of the time
    axis is position ``t`` of the sequence.
    """

    def __init__(self, capacity: int = 0) -> None:
        check_int("capacity", capacity, minimum=0)
        self.capacity = capacity
        self.length = 0
        self._keys: Tensor | None = None
        self._values: Tensor | None = None

    @property
    def keys(self) -> Tensor | None:
        """``(batch, n_kv_heads, length, d_head)``, a view of the buffer; None when empty."""
        return None if self._keys is None else self._keys[:, :, : self.length]

    @property
    def values(self) -> Tensor | None:
        """``(batch, n_kv_heads, length, d_head)``, a view of the buffer; None when empty."""
        return None if self._values is None else self._values[:, :, : self.length]

    @property
    def batch_size(self) -> int | None:
        """The number of sequences cached; None before the first append."""
        return None if self._keys is None else self._keys.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the keys and values stored (not of the spare room in the buffers)."""
        if self._keys is None:
            return 0
        return 2 * self.keys.numel() * self._keys.element_size()

    def _allocate(self, like: Tensor, room: int) -> None:
        batch, heads, _, d_head = like.shape
        keys = like.new_empty(batch, heads, room, d_head)
        values = like.new_empty(batch, heads, room, d_head)
        if self._keys is not None:
            keys[:, :, : self.length] = self.keys
            values[:, :, : self.length] = self.values
        self._keys, self._values = keys, values

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the keys and values of the next positions; return all of them.

        Args:
            k: ``(batch, n_kv_heads, new, d_head)`` keys of positions ``length .. length +
                new - 1``.
            v: ``(batch, n_kv_heads, new, d_head)`` their values.

        Returns:
            ``(keys, values)``, each ``(batch, n_kv_heads, length + new, d_head)``: views
            of the buffers, valid until the next change of the cache.
        """
        if k.ndim != 4 or k.shape != v.shape:
            raise ValueError(
                "k and v must both be (batch, n_kv_heads, new, d_head), got "
                f"{tuple(k.shape)} and {tuple(v.shape)}"
            )
        end = self.length + k.shape[2]
        if self._keys is None:
            self._allocate(k, max(self.capacity, end))
        else:
            stored = self._keys.shape
            if k.shape[:2] != stored[:2] or k.shape[3] != stored[3]:
                raise ValueError(
                    f"the cache holds keys (batch, n_kv_heads, time, d_head) = "
                    f"{tuple(self.keys.shape)}; new keys {tuple(k.shape)} do not match"
                )
            if end > stored[2]:
                self._allocate(k, max(end, 2 * stored[2]))
        self._keys[:, :, self.length : end] = k
        self._values[:, :, self.length : end] = v
        self.length = end
        return self.keys, self.values

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` positions, ``0 <= length <= self.length`` (a rollback)."""
        check_int_in("length", length, 0, self.length)
        self.length = length

    def reorder(self, index: Tensor) -> None:
        """Replace the batch by its rows ``index: (new_batch,)`` long (rows may repeat): how
        beam search keeps the cache of the hypotheses it extends."""
        if self._keys is None:
            return
        if index.dtype != torch.long or index.ndim != 1:
            raise ValueError(
                f"index must be a 1-D long tensor, got {index.dtype} {tuple(index.shape)}"
            )
        batch = self._keys.shape[0]  # beam search reads its scores on the host anyway
        if len(index) and not 0 <= int(index.min()) <= int(index.max()) < batch:
            raise ValueError(f"index must hold rows in [0, {batch}), got {index.tolist()}")
        self._keys, self._values = self._keys[index], self._values[index]


class KVCache:
    """A :class:`LayerKVCache` for each of ``n_layers`` self-attention layers, each with
    room for ``capacity`` positions.

    Between forward passes every layer holds the same positions; :attr:`length` is
    their number. ``truncate`` and ``reorder`` act on every layer.
    """

    def __init__(self, n_layers: int, capacity: int = 0) -> None:
        check_int("n_layers", n_layers)
        self.layers = [LayerKVCache(capacity) for _ in range(n_layers)]

    @property
    def length(self) -> int:
        """The number of positions stored (in every layer)."""
        return self.layers[0].length

    @property
    def batch_size(self) -> int | None:
        """The number of sequences cached; None while the cache is empty."""
        return self.layers[0].batch_size

    @property
    def nbytes(self) -> int:
        """Bytes of the keys and values stored, over all layers."""
        return sum(layer.nbytes for layer in self.layers)

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


def kv_cache_bytes(
    n_layers: int,
    n_kv_heads: int,
    head_dim: int,
    seq_len: int,
    batch_size: int = 1,
    bytes_per_value: int = 2,
    window: int | None = None,
) -> int:
    """Bytes of the keys and values cached for ``batch_size`` sequences of ``seq_len`` tokens.

    Args:
        n_layers: number of attention layers.
        n_kv_heads: key-value heads per layer (``n_heads`` without grouped-query attention).
        head_dim: size of each head's keys and values.
        seq_len: tokens per sequence, >= 0.
        batch_size: sequences cached at once.
        bytes_per_value: 4 for float32, 2 for float16/bfloat16, 1 for int8.
        window: with sliding-window attention, only the last ``window`` tokens are kept.

    Returns:
        ``2 * n_layers * n_kv_heads * head_dim * min(seq_len, window) * batch_size *
        bytes_per_value``.

    Example:
        >>> kv_cache_bytes(n_layers=32, n_kv_heads=32, head_dim=128, seq_len=4096)  # Llama 2 7B
        2147483648
    """
    for name, value in (
        ("n_layers", n_layers),
        ("n_kv_heads", n_kv_heads),
        ("head_dim", head_dim),
        ("batch_size", batch_size),
        ("bytes_per_value", bytes_per_value),
    ):
        check_int(name, value)
    check_int("seq_len", seq_len, minimum=0)
    if window is not None:
        check_int("window", window)
        seq_len = min(seq_len, window)
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * batch_size * bytes_per_value


def hybrid_cache_bytes(
    n_layers: int,
    n_kv_heads: int,
    head_dim: int,
    window: int,
    batch_size: int = 1,
    bytes_per_value: int = 2,
) -> int:
    """Bytes of a hybrid cache: a local window of keys and values plus a compressed memory.

    Per layer and key-value head: ``2 * window * head_dim`` numbers of local memory and the
    linear-attention state, ``head_dim * head_dim`` for ``mu`` plus ``head_dim`` for ``nu``.
    It does not depend on the sequence length.

    Example:
        >>> hybrid_cache_bytes(n_layers=1, n_kv_heads=1, head_dim=4, window=2, bytes_per_value=1)
        36
    """
    check_int("window", window)
    local = kv_cache_bytes(n_layers, n_kv_heads, head_dim, window, batch_size, bytes_per_value)
    compressed = n_layers * n_kv_heads * (head_dim * head_dim + head_dim)
    return local + compressed * batch_size * bytes_per_value


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder that decide its KV cache.

    Attributes:
        name: the model's name.
        n_layers: attention layers.
        n_heads: query heads per layer.
        n_kv_heads: key-value heads per layer (``n_heads`` unless grouped-query).
        head_dim: size of each head.
        context: the context length it was trained with.
        window: the sliding-window size, or None for full attention.
    """

    name: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    context: int
    window: int | None = None

    def __post_init__(self) -> None:
        for name in ("n_layers", "n_heads", "n_kv_heads", "head_dim", "context"):
            check_int(name, getattr(self, name))
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})"
            )
        if self.window is not None:
            check_int("window", self.window)

    @property
    def d_model(self) -> int:
        """The width of the residual stream, ``n_heads * head_dim``."""
        return self.n_heads * self.head_dim

    def cache_bytes(self, seq_len: int, batch_size: int = 1, bytes_per_value: int = 2) -> int:
        """:func:`kv_cache_bytes` for this model (its window included)."""
        return kv_cache_bytes(
            self.n_layers,
            self.n_kv_heads,
            self.head_dim,
            seq_len,
            batch_size,
            bytes_per_value,
            self.window,
        )

    def bytes_per_token(self, bytes_per_value: int = 2) -> int:
        """Cache bytes added by one more token (before any window is full)."""
        return kv_cache_bytes(self.n_layers, self.n_kv_heads, self.head_dim, 1, 1, bytes_per_value)


GPT2_SMALL = ModelShape(
    "GPT-2 small", n_layers=12, n_heads=12, n_kv_heads=12, head_dim=64, context=1024
)
GPT2_XL = ModelShape("GPT-2 XL", n_layers=48, n_heads=25, n_kv_heads=25, head_dim=64, context=1024)
LLAMA2_7B = ModelShape(
    "Llama 2 7B", n_layers=32, n_heads=32, n_kv_heads=32, head_dim=128, context=4096
)
LLAMA2_13B = ModelShape(
    "Llama 2 13B", n_layers=40, n_heads=40, n_kv_heads=40, head_dim=128, context=4096
)
LLAMA2_70B = ModelShape(
    "Llama 2 70B", n_layers=80, n_heads=64, n_kv_heads=8, head_dim=128, context=4096
)
MISTRAL_7B = ModelShape(
    "Mistral 7B", n_layers=32, n_heads=32, n_kv_heads=8, head_dim=128, context=8192, window=4096
)

PUBLISHED_MODELS = (GPT2_SMALL, GPT2_XL, LLAMA2_7B, LLAMA2_13B, LLAMA2_70B, MISTRAL_7B)
