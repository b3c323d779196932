"""T5: an encoder-decoder Transformer with a shared embedding table (Vaswani et al., 2017;
Raffel et al., 2020).

The encoder reads the source bidirectionally; the decoder reads the target causally
and attends to the encoder's output in every block (cross-attention). T5's own relative
position bias is replaced here by the configuration's position scheme.
"""

from __future__ import annotations

from torch import Tensor

from llmcourse.models.base import TokenModel
from llmcourse.models.bert import padding_mask_like
from llmcourse.modules.attention import causal_mask
from llmcourse.modules.transformer import TransformerConfig, TransformerStack


class T5(TokenModel):
    """An encoder-decoder Transformer: ``forward(src, tgt)`` -> next-token logits of ``tgt``."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.encoder = TransformerStack(config)
        self.decoder = TransformerStack(config, cross_attention=True)
        self._add_output_layer()

    def encode(self, src: Tensor, src_padding_mask: Tensor | None = None) -> Tensor:
        """``src: (batch, src_time)`` ids -> ``memory: (batch, src_time, d_model)``;
        ``src_padding_mask: (batch, src_time)`` bool, True at real tokens."""
        x = self.embed_tokens("src", src)
        mask = padding_mask_like("src_padding_mask", src_padding_mask, "src", src)
        return self.encoder(x, mask)

    def decode(self, tgt: Tensor, memory: Tensor, src_padding_mask: Tensor | None = None) -> Tensor:
        """``tgt: (batch, time)`` ids and the encoder's ``memory`` -> logits
        ``(batch, time, vocab_size)``; ``logits[:, t]`` predicts target token ``t + 1``."""
        x = self.embed_tokens("tgt", tgt)
        if memory.ndim != 3 or memory.shape[0] != tgt.shape[0]:
            raise ValueError(
                f"memory must be (batch={tgt.shape[0]}, src_time, d_model), "
                f"got {tuple(memory.shape)}"
            )
        context_mask = padding_mask_like(
            "src_padding_mask", src_padding_mask, "memory's tokens", memory[..., 0]
        )
        mask = causal_mask(tgt.shape[1], device=tgt.device)
        return self.lm_head(self.decoder(x, mask, memory, context_mask))

    def forward(self, src: Tensor, tgt: Tensor, src_padding_mask: Tensor | None = None) -> Tensor:
        """``src: (batch, src_time)``, ``tgt: (batch, time)`` -> ``(batch, time, vocab_size)``."""
        return self.decode(tgt, self.encode(src, src_padding_mask), src_padding_mask)
