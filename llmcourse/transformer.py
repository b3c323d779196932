"""The Transformer block, and the three model families built from it.

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

Three models stack these blocks on token embeddings (plus positions):

- :class:`GPT`, decoder-only: causal self-attention, a next-token distribution at
  every position (Radford et al., 2018, 2019);
- :class:`BERT`, encoder-only: every position sees every other (except padding), a
  distribution over the vocabulary at every position for masked-token prediction
  (Devlin et al., 2019);
- :class:`T5`, encoder-decoder: a bidirectional encoder over the source and a causal
  decoder that also attends to it (Vaswani et al., 2017; Raffel et al., 2020). T5's own
  relative position bias is replaced here by the configuration's position scheme.

All three map their output vectors to logits with a matrix tied to the token
embeddings by default (Press and Wolf, 2017). With ``d_ff = 4 d_model``, each block
has about ``12 d_model^2`` parameters: ``4 d^2`` in the attention projections and
``8 d^2`` in the feed-forward network (:func:`gpt_parameter_counts` gives the exact
numbers).

Generation with a key-value cache: a causal model never revises the keys and values of
earlier positions, so :class:`GPT` can keep them in a
:class:`~llmcourse.attention.KVCache` and read only the new tokens.
``logits = model(idx_new, cache=cache)`` takes the tokens at positions
``cache.length .. cache.length + new - 1`` (the prompt at first, then one token per
step), gives their logits, and appends their keys and values to ``cache`` (from
``model.new_cache()``). The learned and sinusoidal positions and the rotary angles
start at ``cache.length``. The cache cannot outgrow ``block_size``: a sequence longer
than that is read through its last ``block_size`` tokens, positions ``0 ..
block_size - 1`` again, so every key changes and :meth:`GPT.generate` recomputes the
cropped window at every step from then on, exactly as without a cache.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.attention import KVCache, LayerKVCache, MultiHeadAttention, causal_mask
from llmcourse.norms import LayerNorm, RMSNorm
from llmcourse.positional import LearnedPositions, SinusoidalPositions

POSITIONS = ("learned", "sinusoidal", "rope")
NORMS = ("layer", "rms")
ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


@dataclass
class TransformerConfig:
    """The sizes and design choices of a Transformer.

    Attributes:
        vocab_size: number of token ids.
        block_size: the longest sequence (context) the model reads.
        d_model: size of every vector between sublayers.
        n_heads: attention heads per layer; ``d_model`` must be divisible by it.
        n_layers: number of blocks (in each stack, for :class:`T5`).
        d_ff: hidden size of the feed-forward network; None means ``4 * d_model``.
        dropout: dropout on embeddings, attention weights and sublayer outputs.
        position: ``"learned"``, ``"sinusoidal"`` (both added to the embeddings) or
            ``"rope"`` (rotary, applied to queries and keys in self-attention).
        norm: ``"layer"`` (LayerNorm) or ``"rms"`` (RMSNorm).
        pre_norm: normalise sublayer inputs (True) or residual sums (False). Pre-norm
            stacks end with a final norm.
        tie_weights: the output layer reuses the token embedding matrix.
        bias: biases in the linear layers and the LayerNorms.
        activation: the feed-forward nonlinearity, ``"gelu"`` or ``"relu"``.
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

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "d_model", "n_heads", "n_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.d_ff is not None and (not isinstance(self.d_ff, int) or self.d_ff < 1):
            raise ValueError(f"d_ff must be an integer >= 1 or None, got {self.d_ff!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {self.position!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.position == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"sinusoidal positions need an even d_model, got {self.d_model}")
        if self.position == "rope" and self.d_head % 2:
            raise ValueError(f"rotary positions need an even head size, got {self.d_head}")

    @property
    def d_head(self) -> int:
        """The size of one attention head, ``d_model / n_heads``."""
        return self.d_model // self.n_heads

    @property
    def ffn_size(self) -> int:
        """The feed-forward hidden size: ``d_ff``, or ``4 * d_model`` when it is None."""
        return self.d_ff if self.d_ff is not None else 4 * self.d_model


def make_norm(config: TransformerConfig) -> LayerNorm | RMSNorm:
    """The normalisation layer the configuration asks for, over ``d_model`` features."""
    if config.norm == "rms":
        return RMSNorm(config.d_model)
    return LayerNorm(config.d_model, bias=config.bias)


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
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.down = nn.Linear(d_ff, d_model, bias=bias)
        self.activation = ACTIVATIONS[activation]
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (..., d_model)`` -> ``(..., d_model)``; each position independently."""
        return self.down(self.drop(self.activation(self.up(x))))


class TransformerBlock(nn.Module):
    """Self-attention, optionally cross-attention, and a feed-forward network, each with a
    residual connection and a (pre- or post-) normalisation.

    Args:
        config: sizes and choices (``pre_norm``, ``norm``, ``position == "rope"``, ...).
        cross_attention: add a cross-attention sublayer (the decoder of an encoder-decoder).
    """

    def __init__(self, config: TransformerConfig, cross_attention: bool = False) -> None:
        super().__init__()
        d, heads = config.d_model, config.n_heads
        self.pre_norm = config.pre_norm
        rope = config.position == "rope"
        self.attn_norm = make_norm(config)
        self.attn = MultiHeadAttention(d, heads, config.bias, config.dropout, rope=rope)
        if cross_attention:
            self.cross_norm = make_norm(config)
            self.cross_attn = MultiHeadAttention(d, heads, config.bias, config.dropout)
        else:
            self.cross_norm = self.cross_attn = None
        self.ffn_norm = make_norm(config)
        self.ffn = FeedForward(d, config.ffn_size, config.bias, config.activation, config.dropout)
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

        Returns:
            ``(batch, time, d_model)``.
        """
        if (context is None) != (self.cross_attn is None):
            raise ValueError(
                "pass a context exactly when the block has cross-attention "
                f"(it {'has' if self.cross_attn is not None else 'has no'} cross-attention)"
            )
        x = self._residual(x, self.attn_norm, lambda h: self.attn(h, mask=mask, cache=cache))
        if self.cross_attn is not None:
            x = self._residual(
                x, self.cross_norm, lambda h: self.cross_attn(h, context, mask=context_mask)
            )
        return self._residual(x, self.ffn_norm, self.ffn)


class TransformerStack(nn.Module):
    """Positions, dropout, ``n_layers`` blocks and (for pre-norm) a final norm.

    It takes token embeddings and returns the output vectors; the models below own the
    embedding table and the output layer.
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
    ) -> Tensor:
        """``x: (batch, time, d_model)`` token embeddings -> ``(batch, time, d_model)``;
        the masks and context as in :meth:`TransformerBlock.forward`. With a ``cache``
        (one layer per block), ``x`` holds positions ``cache.length ..
        cache.length + time - 1`` and the cache grows by ``time`` positions."""
        start = 0 if cache is None else cache.length
        if self.positions is not None:
            x = x + self.positions(start + x.shape[1])[start:]
        x = self.drop(x)
        layers = [None] * len(self.blocks) if cache is None else cache.layers
        for block, layer_cache in zip(self.blocks, layers, strict=True):
            x = block(x, mask, context, context_mask, layer_cache)
        return self.final_norm(x)


def _check_ids(name: str, idx: Tensor, config: TransformerConfig) -> None:
    if not isinstance(idx, Tensor) or idx.dtype != torch.long or idx.ndim != 2:
        got = f"{idx.dtype} {tuple(idx.shape)}" if isinstance(idx, Tensor) else type(idx).__name__
        raise ValueError(f"{name} must be a (batch, time) long tensor, got {got}")
    if not 1 <= idx.shape[1] <= config.block_size:
        raise ValueError(
            f"{name} has {idx.shape[1]} positions; the model reads 1 to {config.block_size}"
        )
    low, high = int(idx.min()), int(idx.max())
    if not 0 <= low <= high < config.vocab_size:
        raise ValueError(f"{name} ids must be in [0, {config.vocab_size}), got {low}..{high}")


def padding_attention_mask(padding_mask: Tensor) -> Tensor:
    """``(batch, time)`` bool, True at real tokens -> ``(batch, 1, 1, time)``: every query
    (every head) may attend to the real tokens of its sequence only."""
    if padding_mask.dtype != torch.bool or padding_mask.ndim != 2:
        raise ValueError(
            "padding_mask must be a (batch, time) bool tensor, True at real tokens, got "
            f"{padding_mask.dtype} {tuple(padding_mask.shape)}"
        )
    return padding_mask[:, None, None, :]


def _padding_mask_like(
    name: str, padding_mask: Tensor | None, ids_name: str, ids: Tensor
) -> Tensor | None:
    """:func:`padding_attention_mask` of a padding mask that must have the shape of
    ``ids``; None (no padding) stays None."""
    if padding_mask is None:
        return None
    if padding_mask.shape != ids.shape:
        raise ValueError(
            f"{name} must have the shape of {ids_name} {tuple(ids.shape)}, "
            f"got {tuple(padding_mask.shape)}"
        )
    return padding_attention_mask(padding_mask)


def init_weights(model: nn.Module, n_layers: int) -> None:
    """GPT-2's initialisation: linear and embedding weights N(0, 0.02²), biases 0, and the
    projections that end a residual branch (``attn.w_o``, ``ffn.down``) scaled down by
    ``sqrt(2 n_layers)`` so that the residual sum does not grow with depth."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Embedding):
            std = 0.02
            if name.endswith(("w_o", "ffn.down")):
                std /= math.sqrt(2 * n_layers)
            nn.init.normal_(module.weight, std=std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


class _LanguageModelHead(nn.Module):
    """Token embeddings and an output layer, tied or not; shared by the three models."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)

    def _add_head_and_init(self) -> None:
        """Called by the subclasses once their stacks exist: the output layer, GPT-2's
        initialisation of every weight, then the tie."""
        self.lm_head = nn.Linear(self.config.d_model, self.config.vocab_size, bias=False)
        init_weights(self, self.config.n_layers)
        if self.config.tie_weights:
            self.lm_head.weight = self.embed.weight  # one (vocab_size, d_model) matrix


class GPT(_LanguageModelHead):
    """A decoder-only Transformer language model.

    ``forward(idx)`` returns the logits of the next token at every position; by
    default each position sees itself and the positions before it (a causal mask).
    ``forward(idx_new, cache=cache)`` reads only new tokens, the keys and values of the
    earlier ones coming from a :class:`~llmcourse.attention.KVCache` (``new_cache()``).
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.transformer = TransformerStack(config)
        self._add_head_and_init()

    def new_cache(self) -> KVCache:
        """An empty key-value cache with one layer per block, for ``forward(..., cache=)``."""
        return KVCache(self.config.n_layers)

    def _check_cache(self, cache: object, idx: Tensor, mask: Tensor | None) -> None:
        if not isinstance(cache, KVCache) or len(cache.layers) != self.config.n_layers:
            raise ValueError(
                f"cache must be a KVCache with {self.config.n_layers} layers "
                f"(model.new_cache()), got {cache!r}"
            )
        if mask is not None:
            raise ValueError("a cached forward pass is causal: mask must be None with a cache")
        if cache.batch_size not in (None, idx.shape[0]):
            raise ValueError(
                f"the cache holds {cache.batch_size} sequences but idx has {idx.shape[0]}"
            )
        if cache.length + idx.shape[1] > self.config.block_size:
            raise ValueError(
                f"the cache holds {cache.length} positions and idx adds {idx.shape[1]}: "
                f"{cache.length + idx.shape[1]} exceeds block_size {self.config.block_size}; "
                "read the last block_size tokens without the cache (or in a new one)"
            )

    def hidden_states(
        self, idx: Tensor, mask: Tensor | None = None, cache: KVCache | None = None
    ) -> Tensor:
        """``idx: (batch, time)`` -> the last layer's vectors ``(batch, time, d_model)``;
        ``mask`` and ``cache`` as in :meth:`forward`."""
        _check_ids("idx", idx, self.config)
        if cache is not None:
            self._check_cache(cache, idx, mask)
            mask = causal_mask(idx.shape[1], past=cache.length).to(idx.device)
        elif mask is None:
            mask = causal_mask(idx.shape[1]).to(idx.device)
        return self.transformer(self.embed(idx), mask, cache=cache)

    def forward(
        self, idx: Tensor, mask: Tensor | None = None, cache: KVCache | None = None
    ) -> Tensor:
        """Next-token logits.

        Args:
            idx: ``(batch, time)`` long token ids, ``time <= block_size``.
            mask: bool ``(time, time)`` (or broadcastable to ``(batch, heads, time, time)``),
                True where query ``i`` may attend to key ``j``. None means
                ``causal_mask(time)``; any other mask replaces it (e.g. a sliding window).
                Must be None with a ``cache``.
            cache: a :class:`~llmcourse.attention.KVCache` from :meth:`new_cache` holding
                the first ``P = cache.length`` positions of the batch's sequences (empty at
                first). ``idx`` is then positions ``P .. P + time - 1``, which see
                themselves causally and all ``P`` cached positions; their keys and values
                are appended to the cache. ``P + time`` must not exceed ``block_size``.
                Up to rounding, ``model(idx[:, P:], cache=cache)`` after
                ``model(idx[:, :P], cache=cache)`` equals ``model(idx)[:, P:]``.

        Returns:
            ``logits: (batch, time, vocab_size)``; ``logits[:, t]`` predicts the token after
            ``idx[:, t]``.
        """
        return self.lm_head(self.hidden_states(idx, mask, cache))

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Continue ``idx: (batch, time)`` by ``max_new_tokens`` sampled tokens.

        Ancestral sampling: at each step, read the last ``block_size`` tokens, draw the
        next one from ``softmax(logits / temperature)`` and append it. The model runs in
        eval mode (no dropout); its mode is restored afterwards.

        With ``use_cache`` (the default), the prompt is read once into a key-value cache
        and each step reads only the token drawn last; once the sequence is longer than
        ``block_size``, every step reads the last ``block_size`` tokens afresh. The
        tokens are those of ``use_cache=False`` (the logits agree up to rounding).

        Returns:
            ``(batch, time + max_new_tokens)`` long ids, the prompt first.
        """
        _check_ids("idx", idx, self.config)
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        block_size = self.config.block_size
        cache = self.new_cache() if use_cache else None
        was_training = self.training
        self.eval()
        try:
            for _ in range(max_new_tokens):
                if cache is not None and idx.shape[1] <= block_size:
                    logits = self(idx[:, cache.length :], cache=cache)[:, -1]
                else:
                    logits = self(idx[:, -block_size:])[:, -1]
                probs = torch.softmax(logits / temperature, dim=-1)
                idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
        finally:
            self.train(was_training)
        return idx


class BERT(_LanguageModelHead):
    """An encoder-only Transformer: every position attends to every real position.

    ``forward(idx, padding_mask)`` returns logits over the vocabulary at every position,
    what masked-language-model training needs; :meth:`hidden_states` returns the
    contextual vectors themselves (for classification or tagging heads).
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.transformer = TransformerStack(config)
        self._add_head_and_init()

    def hidden_states(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """``idx: (batch, time)``, ``padding_mask: (batch, time)`` bool (True at real tokens,
        None = no padding) -> ``(batch, time, d_model)``."""
        _check_ids("idx", idx, self.config)
        mask = _padding_mask_like("padding_mask", padding_mask, "idx", idx)
        return self.transformer(self.embed(idx), mask)

    def forward(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """``(batch, time)`` ids -> ``logits: (batch, time, vocab_size)``."""
        return self.lm_head(self.hidden_states(idx, padding_mask))


class T5(_LanguageModelHead):
    """An encoder-decoder Transformer with a shared embedding table.

    The encoder reads the source bidirectionally; the decoder reads the target causally
    and attends to the encoder's output in every block (cross-attention).
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.encoder = TransformerStack(config)
        self.decoder = TransformerStack(config, cross_attention=True)
        self._add_head_and_init()

    def encode(self, src: Tensor, src_padding_mask: Tensor | None = None) -> Tensor:
        """``src: (batch, src_time)`` ids -> ``memory: (batch, src_time, d_model)``;
        ``src_padding_mask: (batch, src_time)`` bool, True at real tokens."""
        _check_ids("src", src, self.config)
        mask = _padding_mask_like("src_padding_mask", src_padding_mask, "src", src)
        return self.encoder(self.embed(src), mask)

    def decode(self, tgt: Tensor, memory: Tensor, src_padding_mask: Tensor | None = None) -> Tensor:
        """``tgt: (batch, time)`` ids and the encoder's ``memory`` -> logits
        ``(batch, time, vocab_size)``; ``logits[:, t]`` predicts target token ``t + 1``."""
        _check_ids("tgt", tgt, self.config)
        if memory.ndim != 3 or memory.shape[0] != tgt.shape[0]:
            raise ValueError(
                f"memory must be (batch={tgt.shape[0]}, src_time, d_model), "
                f"got {tuple(memory.shape)}"
            )
        context_mask = (
            None if src_padding_mask is None else padding_attention_mask(src_padding_mask)
        )
        mask = causal_mask(tgt.shape[1]).to(tgt.device)
        return self.lm_head(self.decoder(self.embed(tgt), mask, memory, context_mask))

    def forward(self, src: Tensor, tgt: Tensor, src_padding_mask: Tensor | None = None) -> Tensor:
        """``src: (batch, src_time)``, ``tgt: (batch, time)`` -> ``(batch, time, vocab_size)``."""
        return self.decode(tgt, self.encode(src, src_padding_mask), src_padding_mask)


def gpt_parameter_counts(config: TransformerConfig) -> dict[str, int]:
    """The exact number of parameters of ``GPT(config)``, by part, and their ``"total"``.

    With ``d = d_model``, ``f = ffn_size``, ``L = n_layers``, ``b = 1`` with biases:

    - token embeddings ``vocab_size d``; learned positions ``block_size d`` (else 0);
    - attention ``L (4 d^2 + 4 d b)``: ``W^Q, W^K, W^V, W^O`` and their biases;
    - feed-forward ``L (2 d f + (f + d) b)``;
    - norms: ``2 L`` in the blocks, plus a final one with pre-norm; ``2d`` each for a
      LayerNorm with bias, ``d`` otherwise;
    - output layer ``vocab_size d``, or 0 when tied to the embeddings.
    """
    d, f, n, v = config.d_model, config.ffn_size, config.n_layers, config.vocab_size
    b = int(config.bias)
    norm = 2 * d if config.norm == "layer" and config.bias else d
    counts = {
        "token embeddings": v * d,
        "positions": config.block_size * d if config.position == "learned" else 0,
        "attention": n * (4 * d * d + 4 * d * b),
        "feed-forward": n * (2 * d * f + (f + d) * b),
        "norms": (2 * n + int(config.pre_norm)) * norm,
        "output layer": 0 if config.tie_weights else v * d,
    }
    counts["total"] = sum(counts.values())
    return counts


def random_blocks(
    ids: Tensor, block_size: int, batch_size: int, seed: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless batches of random windows of a token stream, for next-token training.

    Args:
        ids: ``(n,)`` long, the whole training text as one stream of ids.
        block_size: the window length ``T``.
        batch_size: windows per batch.
        seed: seeds the window starts; the same seed gives the same batches.

    Yields:
        ``(inputs, targets)``, both ``(batch_size, T)``: ``targets`` is ``inputs``
        shifted by one token, ``targets[b, t] = ids[s_b + t + 1]``.
    """
    if ids.ndim != 1 or ids.dtype != torch.long:
        raise ValueError(f"ids must be a 1-D long tensor, got {ids.dtype} {tuple(ids.shape)}")
    for name, value in (("block_size", block_size), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if len(ids) < block_size + 1:
        raise ValueError(
            f"ids has {len(ids)} tokens; a window needs block_size + 1 = {block_size + 1}"
        )
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(block_size + 1)
    while True:
        starts = torch.randint(0, len(ids) - block_size, (batch_size, 1), generator=generator)
        windows = ids[starts + offsets]  # (batch, T + 1)
        yield windows[:, :-1], windows[:, 1:]


def next_token_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Mean cross-entropy of ``model(inputs)`` against ``targets`` (a ``train`` loss_fn).

    ``batch = (inputs, targets)``, both ``(batch, time)``; ``model(inputs)`` returns
    ``(batch, time, vocab_size)`` logits.
    """
    inputs, targets = batch
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())
