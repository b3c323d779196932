"""What the course's Transformer language models share: token embeddings below a stack of
blocks, an output layer above it, and GPT-2's initialisation.

All of :class:`~llmcourse.models.GPT`, :class:`~llmcourse.models.BERT` and
:class:`~llmcourse.models.T5` map their output vectors to logits with a matrix tied to
the token embeddings by default (Press and Wolf, 2017): one ``(vocab_size, d_model)``
matrix both reads and writes tokens. ``tie_weights=False`` gives the output layer its
own matrix.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from llmcourse.checks import check_token_ids, embedding_lookup
from llmcourse.modules.transformer import TransformerConfig


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


class TokenModel(nn.Module):
    """The embedding table and the output layer of a model that reads and writes tokens.

    Subclasses build their stacks, then call :meth:`_add_output_layer` once.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)

    def _add_output_layer(self) -> None:
        """The output layer, GPT-2's initialisation of every weight, then the tie."""
        self.lm_head = nn.Linear(self.config.d_model, self.config.vocab_size, bias=False)
        init_weights(self, self.config.n_layers)
        if self.config.tie_weights:
            self.lm_head.weight = self.embed.weight  # one (vocab_size, d_model) matrix

    def embed_tokens(self, name: str, idx: Tensor, past: int = 0) -> Tensor:
        """``idx: (batch, time)`` long -> ``(batch, time, d_model)`` embeddings.

        Checks the shape (at most ``block_size - past`` positions) from metadata only;
        an id outside the vocabulary is reported by the lookup itself, as a ValueError.
        """
        check_token_ids(name, idx)
        room = self.config.block_size - past
        if idx.shape[1] > room:
            raise ValueError(
                f"{name} has {idx.shape[1]} positions; the model reads 1 to {room}"
                + (f" after the {past} cached ones" if past else "")
            )
        return embedding_lookup(self.embed, idx, name)
