"""How much memory a decoder's key-value cache takes: arithmetic for real model sizes.

When a decoder generates text it keeps, for every layer, the keys and the values of all
the positions so far, so that each new token computes only its own (Chapter 8 builds
the cache). Each cached position stores one key and one value vector of ``head_dim``
numbers per key-value head, in every layer:

    bytes = 2 * n_layers * n_kv_heads * head_dim * seq_len * batch_size * bytes_per_value.

Multi-head attention has ``n_kv_heads == n_heads``; grouped-query attention (Ainslie et
al., 2023) shares each key-value head among several query heads, and multi-query
attention (Shazeer, 2019) keeps a single one. A sliding-window model keeps only the
last ``window`` positions. A hybrid cache (:mod:`llmcourse.hybrid_memory`) keeps a
local window plus a compressed memory of fixed size.

The published shapes below are those of the models' papers and released
configurations (context = the training context length).
"""

from __future__ import annotations

from dataclasses import dataclass


def _check_int(name: str, value: object, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


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
        _check_int(name, value)
    _check_int("seq_len", seq_len, minimum=0)
    if window is not None:
        _check_int("window", window)
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
    _check_int("window", window)
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
            _check_int(name, getattr(self, name))
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})"
            )
        if self.window is not None:
            _check_int("window", self.window)

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
