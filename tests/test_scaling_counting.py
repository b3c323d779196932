"""Parameter and FLOP counts of scaling laws, against the models and FlopCounterMode."""

from __future__ import annotations

import pytest
import torch

from llmcourse.models import GPT, gpt_parameter_counts, llama_config
from llmcourse.modules import TransformerConfig
from llmcourse.scaling import (
    counted_training_flops,
    non_embedding_parameters,
    training_flops_per_token,
)


def configs():
    return [
        TransformerConfig(62, 64, 24, 1, 2, position="rope"),
        TransformerConfig(100, 32, 64, 4, 3, position="learned", tie_weights=False),
        TransformerConfig(50, 16, 32, 2, 2, bias=False, norm="rms"),
        llama_config(80, 32, 64, 4, 2, n_kv_heads=2),
    ]


@pytest.mark.parametrize("config", configs(), ids=["rope", "learned-untied", "rms", "llama"])
def test_non_embedding_parameters_are_the_blocks_and_norms(config):
    model = GPT(config)
    blocks = sum(p.numel() for p in model.transformer.blocks.parameters())
    final_norm = sum(p.numel() for p in model.transformer.final_norm.parameters())
    assert non_embedding_parameters(config) == blocks + final_norm
    counts = gpt_parameter_counts(config)
    assert counts["total"] - non_embedding_parameters(config) == sum(
        counts[part] for part in ("token embeddings", "positions", "output layer")
    )


@pytest.mark.parametrize("config", configs(), ids=["rope", "learned-untied", "rms", "llama"])
def test_closed_form_flops_equal_flop_counter_mode(config):
    model = GPT(config)
    inputs = torch.zeros(3, config.block_size, dtype=torch.long)
    counted = counted_training_flops(model, inputs)
    per_token = training_flops_per_token(config)
    assert counted == per_token["total"] * inputs.numel()
    assert per_token["total"] == sum(v for k, v in per_token.items() if k != "total")


def test_six_n_is_twelve_l_d_squared_for_a_gpt_block():
    config = TransformerConfig(62, 64, 96, 3, 4)
    assert training_flops_per_token(config)["6N"] == 6 * 12 * 4 * 96**2
    assert training_flops_per_token(config, context=16)["attention"] == 12 * 4 * 16 * 96
    with pytest.raises(ValueError, match="context must be an integer >= 1"):
        training_flops_per_token(config, context=0)
