"""BERT: an encoder-only Transformer, every position attending to every real position
(Devlin et al., 2019).

``forward(idx, padding_mask)`` returns logits over the vocabulary at every position,
what masked-language-model training needs (:mod:`llmcourse.training.objectives`);
:meth:`BERT.hidden_states` returns the contextual vectors themselves, for
classification or tagging heads (:mod:`llmcourse.models.heads`).
"""

from __future__ import annotations

from torch import Tensor

from llmcourse.models.base import TokenModel
from llmcourse.modules.attention import padding_attention_mask
from llmcourse.modules.transformer import TransformerConfig, TransformerStack


def padding_mask_like(
    name: str, padding_mask: Tensor | None, ids_name: str, ids: Tensor
) -> Tensor | None:
    """:func:`~llmcourse.modules.attention.padding_attention_mask` of a padding mask that
    must have the shape of ``ids``; None (no padding) stays None."""
    if padding_mask is None:
        return None
    if padding_mask.shape != ids.shape:
        raise ValueError(
            f"{name} must have the shape of {ids_name} {tuple(ids.shape)}, "
            f"got {tuple(padding_mask.shape)}"
        )
    return padding_attention_mask(padding_mask)


class BERT(TokenModel):
    """An encoder-only Transformer over ``(batch, time)`` token ids."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.transformer = TransformerStack(config)
        self._add_output_layer()

    def hidden_states(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """``idx: (batch, time)``, ``padding_mask: (batch, time)`` bool (True at real tokens,
        None = no padding) -> ``(batch, time, d_model)``."""
        x = self.embed_tokens("idx", idx)
        mask = padding_mask_like("padding_mask", padding_mask, "idx", idx)
        return self.transformer(x, mask)

    def forward(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """``(batch, time)`` ids -> ``logits: (batch, time, vocab_size)``."""
        return self.lm_head(self.hidden_states(idx, padding_mask))
