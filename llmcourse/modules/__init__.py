"""Transformer building blocks: each a ``torch.nn`` module or a function on tensors.

- :mod:`.attention` -- scaled dot-product attention (written out, and the fused fast
  path), masks, multi-head and grouped-query attention.
- :mod:`.kv_cache` -- the key-value cache of a decoder and the arithmetic of its memory.
- :mod:`.positional` -- learned, sinusoidal and rotary positions.
- :mod:`.norms` -- LayerNorm and RMSNorm.
- :mod:`.feedforward` -- the GELU MLP and SwiGLU.
- :mod:`.transformer` -- :class:`TransformerConfig`, the block and the stack of blocks.
- :mod:`.sparse_attention`, :mod:`.linear_attention`, :mod:`.hybrid_memory` -- attention
  for long inputs (Chapter 7).
- :mod:`.tiled_attention` -- exact attention in tiles with an online softmax
  (FlashAttention's idea), and the measure of a function's peak tensor memory (Chapter 7).
"""

from llmcourse.modules.attention import (
    MultiHeadAttention,
    causal_mask,
    check_mask,
    check_mask_shape,
    fused_attention,
    merge_heads,
    padding_attention_mask,
    record_attention,
    repeat_kv,
    scaled_dot_product_attention,
    split_heads,
)
from llmcourse.modules.feedforward import (
    ACTIVATIONS,
    FeedForward,
    SwiGLU,
    silu,
)
from llmcourse.modules.hybrid_memory import (
    compressed_memory_read,
    hybrid_attention,
)
from llmcourse.modules.kv_cache import (
    GPT2_SMALL,
    GPT2_XL,
    LLAMA2_7B,
    LLAMA2_13B,
    LLAMA2_70B,
    MISTRAL_7B,
    PUBLISHED_MODELS,
    KVCache,
    LayerKVCache,
    ModelShape,
    hybrid_cache_bytes,
    kv_cache_bytes,
)
from llmcourse.modules.linear_attention import (
    elu_feature_map,
    linear_attention,
    linear_attention_recurrent,
    linear_attention_step,
    linear_attention_weights,
)
from llmcourse.modules.norms import (
    LayerNorm,
    RMSNorm,
    layer_norm,
    rms_norm,
)
from llmcourse.modules.positional import (
    LearnedPositions,
    RotaryEmbedding,
    SinusoidalPositions,
    apply_rope,
    frequencies,
    rope_angles,
    rotate_pairs,
    sinusoidal_encoding,
    sinusoidal_shift,
)
from llmcourse.modules.sparse_attention import (
    bigbird_mask,
    check_self_attention_qkv,
    dilated_mask,
    global_mask,
    longformer_mask,
    random_mask,
    reachable,
    sliding_window_attention,
    sliding_window_mask,
)
from llmcourse.modules.tiled_attention import (
    peak_tensor_bytes,
    tiled_attention,
)
from llmcourse.modules.transformer import (
    FEED_FORWARDS,
    NORMS,
    POSITIONS,
    TransformerBlock,
    TransformerConfig,
    TransformerStack,
    make_attention,
    make_feed_forward,
    make_norm,
)

__all__ = [
    "ACTIVATIONS",
    "FEED_FORWARDS",
    "FeedForward",
    "GPT2_SMALL",
    "GPT2_XL",
    "KVCache",
    "LLAMA2_13B",
    "LLAMA2_70B",
    "LLAMA2_7B",
    "LayerKVCache",
    "LayerNorm",
    "LearnedPositions",
    "MISTRAL_7B",
    "ModelShape",
    "MultiHeadAttention",
    "NORMS",
    "POSITIONS",
    "PUBLISHED_MODELS",
    "RMSNorm",
    "RotaryEmbedding",
    "SinusoidalPositions",
    "SwiGLU",
    "TransformerBlock",
    "TransformerConfig",
    "TransformerStack",
    "apply_rope",
    "bigbird_mask",
    "causal_mask",
    "check_mask",
    "check_mask_shape",
    "check_self_attention_qkv",
    "compressed_memory_read",
    "dilated_mask",
    "elu_feature_map",
    "frequencies",
    "fused_attention",
    "global_mask",
    "hybrid_attention",
    "hybrid_cache_bytes",
    "kv_cache_bytes",
    "layer_norm",
    "linear_attention",
    "linear_attention_recurrent",
    "linear_attention_step",
    "linear_attention_weights",
    "longformer_mask",
    "make_attention",
    "make_feed_forward",
    "make_norm",
    "merge_heads",
    "padding_attention_mask",
    "peak_tensor_bytes",
    "random_mask",
    "reachable",
    "record_attention",
    "repeat_kv",
    "rms_norm",
    "rope_angles",
    "rotate_pairs",
    "scaled_dot_product_attention",
    "silu",
    "sinusoidal_encoding",
    "sinusoidal_shift",
    "sliding_window_attention",
    "sliding_window_mask",
    "split_heads",
    "tiled_attention",
]
