"""The Transformer block and the stack of blocks, configured by :class:`TransformerConfig`.

A block refines a sequence of vectors ``x: (batch, time, d_model)`` with two
sublayers, each wrapped in a residual connection and a normalisation: multi-head
self-attention, where positions exchange information, and a position-wise
feed-forward network, which transforms each position on its own. Pre-norm
(GPT-2 onwards) normalises the input of each sublayer; post-norm (the original
Transformer, BERT) normalises after the residual sum::

    pre-norm:  x = x + Attention(Norm(x));   x = x + FFN(Norm(x))
    post-norm: x = Norm(x + Attention(x));   x = Norm(x + FFN(x))

A decoder block of an encoder-decoder adds a third sublayer between the two, the
cross-attention from the decoder's positions to the encoder's output.

The configuration covers GPT-2's design (learned positions, LayerNorm, a GELU MLP,
biases) and Llama's (RMSNorm, rotary positions, a SwiGLU network, grouped-query
attention, no biases) and the choices between them. The models that put token
embeddings below a stack and an output layer above it are in :mod:`llmcourse.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from llmcourse.checks import check_choice, check_int, check_positive, check_probability
from llmcourse.modules.attention import MultiHeadAttention
from llmcourse.modules.feedforward import ACTIVATIONS, FeedForward, SwiGLU
from llmcourse.modules.kv_cache import KVCache, LayerKVCache
from llmcourse.modules.norms import LayerNorm, RMSNorm
from llmcourse.modules.positional import LearnedPositions, SinusoidalPositions

POSITIONS = ("learned", "sinusoidal", "rope")
NORMS = ("layer", "rms")
FEED_FORWARDS = (*ACTIVATIONS, "swiglu")


@dataclass
class TransformerConfig:
    """The sizes and design choices of a Transformer.

    Attributes:
        vocab_size: number of token ids.
        block_size: the longest sequence (context) the model reads.
        d_model: size of every vector between sublayers.
        n_heads: attention (query) heads per layer; ``d_model`` must be divisible by it.
        n_layers: number of blocks (in each stack, for T5).
        d_ff: hidden size of the feed-forward network; None means :attr:`ffn_size`'s
            default.
        dropout: dropout on embeddings, attention weights and sublayer outputs.
        position: ``"learned"``, ``"sinusoidal"`` (both added to the embeddings) or
            ``"rope"`` (rotary, applied to queries and keys in self-attention).
        norm: ``"layer"`` (LayerNorm) or ``"rms"`` (RMSNorm).
        pre_norm: normalise sublayer inputs (True) or residual sums (False). Pre-norm
            stacks end with a final norm.
        tie_weights: the output layer reuses the token embedding matrix.
        bias: biases in the linear layers and the LayerNorms (SwiGLU has none).
        activation: the feed-forward network: a two-layer MLP with ``"gelu"`` or
            ``"relu"``, or the gated ``"swiglu"``.
        n_kv_heads: key-value heads per attention layer (grouped-query attention);
            None means ``n_heads``; 1 is multi-query attention.
        norm_eps: the epsilon of every norm; None means the norm's default (1e-5 for
            LayerNorm, 1e-6 for RMSNorm).
        rope_theta: the base of the rotary frequencies, ``w_i = theta^(-2i / d_head)``.
    """

    vocab_size: int
    block_size: int
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int | None = None
    dropout: float = 0.0
    position: str = "learned"
    norm: str = "layer"
    pre_norm: bool = True
    tie_weights: bool = True
    bias: bool = True
    activation: str = "gelu"
    n_kv_heads: int | None = None
    norm_eps: float | None = None
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "d_model", "n_heads", "n_layers"):
            check_int(name, getattr(self, name))
        if self.d_ff is not None:
            check_int("d_ff", self.d_ff)
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.n_kv_heads is not None:
            check_int("n_kv_heads", self.n_kv_heads)
            if self.n_heads % self.n_kv_heads:
                raise ValueError(
                    f"n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads})"
                )
        check_probability("dropout", self.dropout)
        check_choice("position", self.position, POSITIONS)
        check_choice("norm", self.norm, NORMS)
        check_choice("activation", self.activation, FEED_FORWARDS)
        if self.norm_eps is not None:
            check_positive("norm_eps", self.norm_eps)
        check_positive("rope_theta", self.rope_theta)
        if self.rope_theta <= 1:
            raise ValueError(f"rope_theta must be > 1, got {self.rope_theta!r}")
        if self.position == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"sinusoidal positions need an even d_model, got {self.d_model}")
        if self.position == "rope" and self.d_head % 2:
            raise ValueError(f"rotary positions need an even head size, got {self.d_head}")

    @property
    def d_head(self) -> int:
        """The size of one attention head, ``d_model / n_heads``."""
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """The number of key-value heads: ``n_kv_heads``, or ``n_heads`` when it is None."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def ffn_size(self) -> int:
        """The feed-forward hidden size: ``d_ff`` if set; else ``4 * d_model`` for an MLP,
        and for SwiGLU two thirds of that, rounded up to a multiple of 8, which keeps
        the parameter count of the 4x MLP with three matrices instead of two (Llama rounds
        up to a multiple of 256: give ``d_ff`` to match a published model)."""
        if self.d_ff is not None:
            return self.d_ff
        if self.activation == "swiglu":
            hidden = -(-8 * self.d_model // 3)  # ceil(2/3 * 4 d_model)
            return -(-hidden // 8) * 8
        return 4 * self.d_model


def make_norm(config: TransformerConfig) -> LayerNorm | RMSNorm:
    """The normalisation layer the configuration asks for, over ``d_model`` features."""
    eps = {} if config.norm_eps is None else {"eps": config.norm_eps}
    if config.norm == "rms":
        return RMSNorm(config.d_model, **eps)
    return LayerNorm(config.d_model, bias=config.bias, **eps)


def make_feed_forward(config: TransformerConfig) -> FeedForward | SwiGLU:
    """The feed-forward network the configuration asks for."""
    if config.activation == "swiglu":
        return SwiGLU(config.d_model, config.ffn_size, config.dropout)
    return FeedForward(
        config.d_model, config.ffn_size, config.bias, config.activation, config.dropout
    )


def make_attention(config: TransformerConfig, self_attention: bool = True) -> MultiHeadAttention:
    """A self-attention layer (rotary if the configuration says so), or a cross-attention
    layer (never rotary: the positions of two sequences are not comparable)."""
    rope = self_attention and config.position == "rope"
    return MultiHeadAttention(
        config.d_model,
        config.n_heads,
        config.bias,
        config.dropout,
        rope=rope,
        n_kv_heads=config.kv_heads,
        rope_theta=config.rope_theta,
        max_positions=config.block_size if rope else 0,
    )


class TransformerBlock(nn.Module):
    """Self-attention, optionally cross-attention, and a feed-forward network, each with a
    residual connection and a (pre- or post-) normalisation.

    Args:
        config: sizes and choices (``pre_norm``, ``norm``, ``position == "rope"``, ...).
        cross_attention: add a cross-attention sublayer (the decoder of an encoder-decoder).
    """

    def __init__(self, config: TransformerConfig, cross_attention: bool = False) -> None:
        super().__init__()
        self.pre_norm = config.pre_norm
        self.attn_norm = make_norm(config)
        self.attn = make_attention(config)
        if cross_attention:
            self.cross_norm = make_norm(config)
            self.cross_attn = make_attention(config, self_attention=False)
        else:
            self.cross_norm = self.cross_attn = None
        self.ffn_norm = make_norm(config)
        self.ffn = make_feed_forward(config)
        self.drop = nn.Dropout(config.dropout)

    def _residual(self, x: Tensor, norm: nn.Module, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        if self.pre_norm:
            return x + self.drop(sublayer(norm(x)))
        return norm(x + self.drop(sublayer(x)))

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        cache: LayerKVCache | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """Refine ``x``.

        Args:
            x: ``(batch, time, d_model)``.
            mask: self-attention mask, bool, broadcastable to ``(batch, heads, time, time)``,
                True = may attend; None lets every position see every position.
            context: ``(batch, src_time, d_model)``, what cross-attention reads (the
                encoder's output); required exactly when the block has cross-attention.
            context_mask: cross-attention mask, broadcastable to
                ``(batch, heads, time, src_time)`` (e.g. the source padding).
            cache: the self-attention's key-value cache; ``x`` then holds the positions
                after the cached ones and ``mask`` is ``(time, cache.length + time)``
                (see :meth:`MultiHeadAttention.forward`).
            positions: rotary positions, ``(time,)`` or ``(batch, time)``; None means
                ``cache.length ..`` (0 without a cache).

        Returns:
            ``(batch, time, d_model)``.
        """
        if (context is None) != (self.cross_attn is None):
            raise ValueError(
                "pass a context exactly when the block has cross-attention "
                f"(it {'has' if self.cross_attn is not None else 'has no'} cross-attention)"
            )
        x = self._residual(
            x, self.attn_norm, lambda h: self.attn(h, mask=mask, cache=cache, positions=positions)
        )
        if self.cross_attn is not None:
            x = self._residual(
                x, self.cross_norm, lambda h: self.cross_attn(h, context, mask=context_mask)
            )
        return self._residual(x, self.ffn_norm, self.ffn)


class TransformerStack(nn.Module):
    """Positions, dropout, ``n_layers`` blocks and (for pre-norm) a final norm.

    It takes token embeddings and returns the output vectors; the models of
    :mod:`llmcourse.models` own the embedding table and the output layer.
    """

    def __init__(self, config: TransformerConfig, cross_attention: bool = False) -> None:
        super().__init__()
        if config.position == "learned":
            self.positions = LearnedPositions(config.block_size, config.d_model)
        elif config.position == "sinusoidal":
            self.positions = SinusoidalPositions(config.block_size, config.d_model)
        else:  # rope: the attention layers rotate queries and keys
            self.positions = None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(config, cross_attention) for _ in range(config.n_layers)
        )
        self.final_norm = make_norm(config) if config.pre_norm else nn.Identity()

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        cache: KVCache | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """``x: (batch, time, d_model)`` token embeddings -> ``(batch, time, d_model)``;
        the masks, context and rotary ``positions`` as in :meth:`TransformerBlock.forward`.
        With a ``cache`` (one layer per block), ``x`` holds positions ``cache.length ..
        cache.length + time - 1`` and the cache grows by ``time`` positions."""
        start = 0 if cache is None else cache.length
        if self.positions is not None:
            x = x + self.positions(start + x.shape[1])[start:]
        x = self.drop(x)
        layers = [None] * len(self.blocks) if cache is None else cache.layers
        for block, layer_cache in zip(self.blocks, layers, strict=True):
            x = block(x, mask, context, context_mask, layer_cache, positions)
        return self.final_norm(x)
