"""GPT: a decoder-only Transformer language model (Radford et al., 2018, 2019).

``GPT(config)(idx)`` returns the logits of the next token at every position; each
position sees itself and the positions before it (a causal mask). The same class builds
GPT-2's design and Llama's (Touvron et al., 2023) from a
:class:`~llmcourse.modules.transformer.TransformerConfig`; :func:`gpt2_config` and
:func:`llama_config` name the two sets of choices, and :func:`gpt_parameter_counts`
counts the parameters of any configuration exactly.

Generation with a key-value cache: a causal model never revises the keys and values of
earlier positions, so :class:`GPT` can keep them in a
:class:`~llmcourse.modules.kv_cache.KVCache` and read only the new tokens.
``logits = model(idx_new, cache=cache)`` takes the tokens at positions
``cache.length .. cache.length + new - 1`` (the prompt at first, then one token per
step), gives their logits, and appends their keys and values to ``cache`` (from
``model.new_cache()``). The learned and sinusoidal positions and the rotary angles
start at ``cache.length``. The cache cannot outgrow ``block_size``; the generation loop
(:mod:`llmcourse.generation`) reads longer sequences through their last ``block_size``
tokens without the cache. Sampling, greedy and beam search are in
:mod:`llmcourse.generation`: ``sample(model, idx, max_new_tokens)``.
"""

from __future__ import annotations

from torch import Tensor

from llmcourse.models.base import TokenModel
from llmcourse.modules.attention import causal_mask
from llmcourse.modules.kv_cache import KVCache
from llmcourse.modules.transformer import TransformerConfig, TransformerStack


class GPT(TokenModel):
    """A decoder-only Transformer language model.

    ``forward(idx)`` returns the logits of the next token at every position; by
    default each position sees itself and the positions before it (a causal mask).
    ``forward(idx_new, cache=cache)`` reads only new tokens, the keys and values of the
    earlier ones coming from a :class:`~llmcourse.modules.kv_cache.KVCache` (``new_cache()``).
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.transformer = TransformerStack(config)
        self._add_output_layer()

    def new_cache(self) -> KVCache:
        """An empty key-value cache with one layer per block and room for ``block_size``
        positions, for ``forward(..., cache=)``."""
        return KVCache(self.config.n_layers, capacity=self.config.block_size)

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

    def hidden_states(
        self,
        idx: Tensor,
        mask: Tensor | None = None,
        cache: KVCache | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """``idx: (batch, time)`` -> the last layer's vectors ``(batch, time, d_model)``;
        ``mask``, ``cache`` and ``positions`` as in :meth:`forward`."""
        if positions is not None and self.config.position != "rope":
            raise ValueError("positions apply to rotary models (position='rope') only")
        if cache is not None:
            self._check_cache(cache, idx, mask)
        past = 0 if cache is None else cache.length
        x = self.embed_tokens("idx", idx, past)
        if mask is None:
            mask = causal_mask(idx.shape[1], past=past, device=idx.device)
        return self.transformer(x, mask, cache=cache, positions=positions)

    def forward(
        self,
        idx: Tensor,
        mask: Tensor | None = None,
        cache: KVCache | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """Next-token logits.

        Args:
            idx: ``(batch, time)`` long token ids, ``time <= block_size``.
            mask: bool ``(time, time)`` (or broadcastable to ``(batch, heads, time, time)``),
                True where query ``i`` may attend to key ``j``. None means
                ``causal_mask(time)``; any other mask replaces it (e.g. a sliding window,
                or causal and padding combined). Must be None with a ``cache``.
            cache: a :class:`~llmcourse.modules.kv_cache.KVCache` from :meth:`new_cache`
                holding the first ``P = cache.length`` positions of the batch's sequences
                (empty at first). ``idx`` is then positions ``P .. P + time - 1``, which
                see themselves causally and all ``P`` cached positions; their keys and
                values are appended to the cache. ``P + time`` must not exceed
                ``block_size``. Up to rounding, ``model(idx[:, P:], cache=cache)`` after
                ``model(idx[:, :P], cache=cache)`` equals ``model(idx)[:, P:]``.
            positions: rotary models only: the position of every token, ``(time,)`` or
                ``(batch, time)`` (e.g. counting from each sequence's first real token
                after left padding). None means ``P .. P + time - 1``.

        Returns:
            ``logits: (batch, time, vocab_size)``; ``logits[:, t]`` predicts the token after
            ``idx[:, t]``.
        """
        return self.lm_head(self.hidden_states(idx, mask, cache, positions))


def gpt2_config(
    vocab_size: int, block_size: int, d_model: int, n_heads: int, n_layers: int, **changes
) -> TransformerConfig:
    """GPT-2's choices (Radford et al., 2019): learned positions, pre-norm LayerNorm with
    biases, a 4x GELU MLP, biases everywhere, tied embeddings; ``changes`` override any."""
    choices = dict(position="learned", norm="layer", activation="gelu", bias=True)
    return TransformerConfig(
        vocab_size, block_size, d_model, n_heads, n_layers, **(choices | changes)
    )


def llama_config(
    vocab_size: int,
    block_size: int,
    d_model: int,
    n_heads: int,
    n_layers: int,
    n_kv_heads: int | None = None,
    **changes,
) -> TransformerConfig:
    """Llama's choices (Touvron et al., 2023): pre-norm RMSNorm, rotary positions, a
    SwiGLU network, grouped-query attention with ``n_kv_heads``, no biases and an output
    layer of its own; ``changes`` override any."""
    choices = dict(
        position="rope",
        norm="rms",
        activation="swiglu",
        bias=False,
        tie_weights=False,
        n_kv_heads=n_kv_heads,
    )
    return TransformerConfig(
        vocab_size, block_size, d_model, n_heads, n_layers, **(choices | changes)
    )


def gpt_parameter_counts(config: TransformerConfig) -> dict[str, int]:
    """The exact number of parameters of ``GPT(config)``, by part, and their ``"total"``.

    With ``d = d_model``, ``f = ffn_size``, ``L = n_layers``, ``k = kv_heads * d_head``
    (``= d`` without grouped-query attention) and ``b = 1`` with biases:

    - token embeddings ``vocab_size d``; learned positions ``block_size d`` (else 0);
    - attention ``L (2 d^2 + 2 d k + (2 d + 2 k) b)``: ``W^Q, W^O`` are ``d x d``, ``W^K,
      W^V`` are ``d x k``;
    - feed-forward ``L (2 d f + (f + d) b)`` for an MLP, ``L 3 d f`` for SwiGLU;
    - norms: ``2 L`` in the blocks, plus a final one with pre-norm; ``2d`` each for a
      LayerNorm with bias, ``d`` otherwise;
    - output layer ``vocab_size d``, or 0 when tied to the embeddings.
    """
    d, f, n, v = config.d_model, config.ffn_size, config.n_layers, config.vocab_size
    k = config.kv_heads * config.d_head
    b = int(config.bias)
    norm = 2 * d if config.norm == "layer" and config.bias else d
    ffn = 3 * d * f if config.activation == "swiglu" else 2 * d * f + (f + d) * b
    counts = {
        "token embeddings": v * d,
        "positions": config.block_size * d if config.position == "learned" else 0,
        "attention": n * (2 * d * d + 2 * d * k + (2 * d + 2 * k) * b),
        "feed-forward": n * ffn,
        "norms": (2 * n + int(config.pre_norm)) * norm,
        "output layer": 0 if config.tie_weights else v * d,
    }
    counts["total"] = sum(counts.values())
    return counts
