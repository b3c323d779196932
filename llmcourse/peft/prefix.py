"""Prefix tuning: trained keys and values in front of every attention layer (Li and Liang,
2021).

A decoder's attention layer at position ``t`` reads the keys and values of positions
``<= t``. Prefix tuning adds ``P`` more positions that every query can read, in every
layer: their keys and values are trained parameters, ``(n_layers, n_kv_heads, P,
d_head)`` each, and the model is frozen. To the model they look like the keys and values
of ``P`` tokens that came before the input, but they need not be the keys and values of
any real tokens, and they steer every layer directly, where a prompt of real tokens
could only steer the first.

The model already has the path that adds them: the key-value cache of generation
(:mod:`llmcourse.modules.kv_cache`). A cache holding ``P`` positions makes the model read
``idx`` as positions ``P, P + 1, ...`` that also see the cached ones, so
:class:`PrefixTuning` fills a fresh cache with its prefix before each forward pass and
the gradients flow into the prefix through the cache. The input may then be at most
``block_size - P`` tokens. With rotary positions only the distance between two
positions matters, so shifting the input by ``P`` changes nothing for the pretrained
model; the prefix keys are used as they are, without rotation.

Li and Liang found training the prefix directly unstable from a random start and
reparametrised it through an MLP; starting from the keys and values of real tokens
(``init_ids``, their other recommendation) is the simpler cure used here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llmcourse.checks import check_int, check_token_ids
from llmcourse.models.gpt import GPT
from llmcourse.modules.kv_cache import KVCache
from llmcourse.peft.trainable import freeze


class PrefixTuning(nn.Module):
    """A frozen :class:`~llmcourse.models.GPT` with ``n_prefix`` trained key-value
    positions in front of every attention layer.

    Args:
        model: the pretrained model; its parameters are frozen (not copied).
        n_prefix: ``P``, the number of prefix positions.
        init_ids: ``(P,)`` long token ids whose keys and values (the model's own, with
            the ids at positions ``0 .. P - 1``) start the prefix; None starts it from
            ``N(0, 0.02^2)``.

    Parameters: ``keys`` and ``values``, each ``(n_layers, n_kv_heads, P, d_head)``.

    ``hidden_states(idx)`` and ``forward(idx)`` take ``idx: (batch, time)`` with
    ``time <= block_size - P`` and return the model's ``(batch, time, d_model)`` vectors
    and ``(batch, time, vocab)`` logits for the input positions, so that a
    :class:`~llmcourse.models.FineTuner` can use it as a body.
    """

    def __init__(self, model: GPT, n_prefix: int, init_ids: Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(model, GPT):
            raise TypeError(f"model must be a GPT, got {type(model).__name__}")
        config = model.config
        check_int("n_prefix", n_prefix)
        if n_prefix >= config.block_size:
            raise ValueError(
                f"n_prefix must leave room for the input in the {config.block_size}-token "
                f"context, got {n_prefix}"
            )
        self.model, self.n_prefix = model, n_prefix
        freeze(model)
        if init_ids is None:
            device = model.embed.weight.device
            shape = (config.n_layers, config.kv_heads, n_prefix, config.d_head)
            keys = torch.randn(shape, device=device) * 0.02
            values = torch.randn(shape, device=device) * 0.02
        else:
            keys, values = self._keys_values_of(init_ids)
        self.keys, self.values = nn.Parameter(keys), nn.Parameter(values)

    @torch.no_grad()
    def _keys_values_of(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        check_token_ids("init_ids", ids, ndim=1)
        if len(ids) != self.n_prefix:
            raise ValueError(f"init_ids must hold n_prefix={self.n_prefix} ids, got {len(ids)}")
        cache = self.model.new_cache()
        self.model.hidden_states(ids[None], cache=cache)
        keys = torch.stack([layer.keys[0] for layer in cache.layers])
        values = torch.stack([layer.values[0] for layer in cache.layers])
        return keys.clone(), values.clone()  # (n_layers, kv_heads, P, d_head)

    def prefix_cache(self, batch_size: int) -> KVCache:
        """A new cache of the model holding the prefix for ``batch_size`` sequences."""
        cache = self.model.new_cache()
        for layer, k, v in zip(cache.layers, self.keys, self.values, strict=True):
            layer.append(k.expand(batch_size, -1, -1, -1), v.expand(batch_size, -1, -1, -1))
        return cache

    def hidden_states(self, idx: Tensor) -> Tensor:
        """``idx: (batch, time)`` -> ``(batch, time, d_model)``, reading the prefix."""
        check_token_ids("idx", idx)
        return self.model.hidden_states(idx, cache=self.prefix_cache(idx.shape[0]))

    def forward(self, idx: Tensor) -> Tensor:
        """``idx: (batch, time)`` -> next-token logits ``(batch, time, vocab_size)``."""
        return self.model.lm_head(self.hidden_states(idx))
