"""Compression: smaller and cheaper models from a trained one (Chapter 13).

- :mod:`.quantize` -- absmax and zero-point integer quantization, per tensor, per channel
  or block-wise; dequantization; the storage of a quantized tensor; packing codes.
- :mod:`.codebook` -- quantization to a table of values: the 2-bit example, NormalFloat
  (NF4) from quantiles of N(0, 1), double quantization of the block constants.
- :mod:`.quantized_linear` -- linear layers stored quantized and dequantized on the fly
  (W4A16), and a whole model's weights quantized to measure its loss and size.
- :mod:`.outliers` -- vector-wise int8 products and LLM.int8()'s outlier decomposition.
- :mod:`.pruning` -- magnitude (layer-wise, global) and movement pruning masks, keeping
  pruned weights at zero, the cubic schedule, structured pruning of FFN neurons, sparse
  storage.
- :mod:`.distillation` -- the distillation loss with a temperature (and its T^2).
- :mod:`.mixed_precision` -- 16-bit training with float32 master weights, step by step.

:mod:`llmcourse.peft` builds QLoRA on :mod:`.quantized_linear`; this subpackage imports
nothing from it.
"""

from llmcourse.compression.codebook import (
    QLORA_NF4,
    check_codebook,
    codebook_quantize,
    double_quantize,
    nf4_quantize,
    normal_float_offset,
    normal_float_values,
)
from llmcourse.compression.distillation import distillation_loss, kd_loss
from llmcourse.compression.mixed_precision import (
    LOW_PRECISIONS,
    MasterWeightTraining,
    rounded_away,
    spacing,
)
from llmcourse.compression.outliers import int8_matmul, llm_int8_matmul, outlier_columns
from llmcourse.compression.pruning import (
    MovementScores,
    Pruned,
    cubic_sparsity,
    ffn_neuron_scores,
    global_magnitude_masks,
    keep_top,
    layerwise_magnitude_masks,
    magnitude_mask,
    mask_sparsity,
    prunable_weights,
    prune,
    prune_ffn_neurons,
    sparse_nbytes,
)
from llmcourse.compression.quantize import (
    BITS,
    SCHEMES,
    Layout,
    Quantized,
    absmax_quantize,
    check_bits,
    dequantize,
    fake_quantize,
    group,
    pack_codes,
    quantize,
    scale_of,
    ungroup,
    unpack_codes,
    zeropoint_quantize,
)
from llmcourse.compression.quantized_linear import (
    COMPUTE_DTYPES,
    WEIGHT_SCHEMES,
    QuantizedLinear,
    fake_quantize_weights,
    matrix_parameters,
    quantize_linear_layers,
    quantize_weight,
    quantized_nbytes,
)

__all__ = [
    "absmax_quantize",
    "BITS",
    "check_bits",
    "check_codebook",
    "codebook_quantize",
    "COMPUTE_DTYPES",
    "cubic_sparsity",
    "dequantize",
    "distillation_loss",
    "double_quantize",
    "fake_quantize",
    "fake_quantize_weights",
    "ffn_neuron_scores",
    "global_magnitude_masks",
    "group",
    "int8_matmul",
    "kd_loss",
    "keep_top",
    "layerwise_magnitude_masks",
    "Layout",
    "llm_int8_matmul",
    "LOW_PRECISIONS",
    "magnitude_mask",
    "mask_sparsity",
    "MasterWeightTraining",
    "matrix_parameters",
    "MovementScores",
    "nf4_quantize",
    "normal_float_offset",
    "normal_float_values",
    "outlier_columns",
    "pack_codes",
    "prunable_weights",
    "prune",
    "prune_ffn_neurons",
    "Pruned",
    "QLORA_NF4",
    "quantize",
    "quantize_linear_layers",
    "quantize_weight",
    "Quantized",
    "QuantizedLinear",
    "quantized_nbytes",
    "rounded_away",
    "scale_of",
    "SCHEMES",
    "spacing",
    "sparse_nbytes",
    "ungroup",
    "unpack_codes",
    "WEIGHT_SCHEMES",
    "zeropoint_quantize",
]
