"""QLoRA in miniature: LoRA on a frozen base stored in NF4 (Dettmers et al., 2023).

LoRA trains few parameters, but the frozen weights still fill memory at 16 or 32 bits.
QLoRA stores them in 4-bit NormalFloat, in blocks of 64 with double-quantized constants
(:mod:`llmcourse.compression.codebook`), and trains LoRA adapters in 16 or 32 bits on
top. Every forward pass dequantizes each frozen weight just before its matrix product
(:class:`~llmcourse.compression.quantized_linear.QuantizedLinear`), and the backward pass
goes through the dequantized weight to the adapters' parameters: gradients are never
taken with respect to the 4-bit weights, which stay as they are.

The frozen model's function changes a little, by the quantization error; the adapters
are trained on the quantized model, so they learn to correct some of it too. QLoRA
applies LoRA to every linear layer of the blocks, which the paper found necessary to
match 16-bit fine-tuning. (Its third ingredient, paged optimizers, moves optimizer state
between GPU and CPU memory and has no counterpart here.)

This module imports from :mod:`llmcourse.compression` (quantized storage), which sits
below :mod:`llmcourse.peft` and never imports from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from llmcourse.checks import check_int
from llmcourse.compression.quantized_linear import quantize_linear_layers
from llmcourse.peft.lora import LoRALinear, select_linear_layers
from llmcourse.peft.trainable import freeze

QLORA_TARGETS = ("attn.w_q", "attn.w_k", "attn.w_v", "attn.w_o", "ffn.up", "ffn.down")
"""Every linear layer of a GPT block (GELU MLP), QLoRA's choice of targets."""


def apply_qlora(
    model: nn.Module,
    targets: Sequence[str] = QLORA_TARGETS,
    r: int = 8,
    alpha: float | None = None,
    dropout: float = 0.0,
    block_size: int = 64,
    double_quant: bool = True,
    compute_dtype: torch.dtype = torch.float32,
) -> list[str]:
    """Store the linear layers of ``model`` named by ``targets`` in NF4 and wrap each in
    :class:`~llmcourse.peft.lora.LoRALinear`, in place; freeze every other parameter.

    Args:
        model: e.g. a :class:`~llmcourse.models.GPT`.
        targets: layer names or name endings (:func:`llmcourse.peft.lora.matches`).
        r, alpha, dropout: as in :class:`~llmcourse.peft.lora.LoRALinear`.
        block_size: NF4 block size (64 in QLoRA).
        double_quant: quantize the blocks' constants too (QLoRA does).
        compute_dtype: the dtype of the dequantized weights and their products
            (bfloat16 in QLoRA; float32 by default here, where CPUs are faster in it).

    Returns:
        The names of the quantized and adapted layers.
    """
    check_int("r", r)
    names = select_linear_layers(model, targets)
    freeze(model)
    quantized = quantize_linear_layers(
        model, names, "normalfloat", 4, block_size, double_quant, compute_dtype
    )
    for name, layer in quantized.items():
        model.set_submodule(name, LoRALinear(layer, r, alpha, dropout))
    return names
