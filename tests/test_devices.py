"""Every model runs on the device of its inputs: forward passes on the ``meta`` device.

No accelerator is available here, but the ``meta`` device catches the same mistakes: a
meta tensor has a shape and no data, and an operation between a meta tensor and a CPU
tensor fails, as one between CUDA and CPU tensors would. So a model that creates a mask,
a position index or a state on the CPU inside its forward pass fails here, and so does
one that reads a tensor's values on the host (a meta tensor has none to read).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llmcourse.classic import (
    LSTM,
    RNN,
    FixedWindowLM,
    RNNLanguageModel,
    Seq2Seq,
    Seq2SeqConfig,
    SequenceClassifier,
    SequenceTagger,
    SkipGram,
)
from llmcourse.models import (
    BERT,
    GPT,
    T5,
    FineTuner,
    SequenceClassificationHead,
    SpanQAHead,
    ViT,
    llama_config,
)
from llmcourse.modules import MultiHeadAttention, TransformerConfig, record_attention

META = torch.device("meta")


def on_meta(make):
    """Build a model directly on the meta device (its parameters never touch the CPU)."""
    with META:
        return make()


def ids(*shape: int) -> torch.Tensor:
    return torch.zeros(shape, dtype=torch.long, device=META)


def gpt_config(**changes) -> TransformerConfig:
    base = dict(vocab_size=50, block_size=16, d_model=16, n_heads=4, n_layers=2)
    return TransformerConfig(**(base | changes))


@pytest.mark.parametrize(
    "config",
    [
        gpt_config(),
        gpt_config(position="sinusoidal", norm="rms", pre_norm=False),
        gpt_config(position="rope"),
        llama_config(50, 16, 16, 4, 2, n_kv_heads=2),
    ],
    ids=["gpt2", "sinusoidal-post-norm", "rope", "llama-gqa"],
)
def test_gpt_forward_cached_forward_and_recorded_attention_on_meta(config):
    model = on_meta(lambda: GPT(config))
    assert model(ids(2, 10)).shape == (2, 10, 50) and model(ids(2, 10)).device == META
    cache = model.new_cache()
    model(ids(2, 6), cache=cache)
    assert model(ids(2, 1), cache=cache).device == META and cache.length == 7
    with record_attention(model) as layers:
        model(ids(1, 5))
    assert layers[0].last_weights.device == META
    if config.position == "rope":
        positions = torch.zeros(2, 10, dtype=torch.long, device=META)
        assert model(ids(2, 10), positions=positions).device == META


def test_bert_t5_and_heads_on_meta():
    config = gpt_config()
    bert = on_meta(lambda: BERT(config))
    padding = torch.ones(2, 7, dtype=torch.bool, device=META)
    assert bert(ids(2, 7), padding).device == META
    t5 = on_meta(lambda: T5(config))
    assert t5(ids(2, 7), ids(2, 5), padding).shape == (2, 5, 50)
    for head, pool in ((SequenceClassificationHead, "last"), (SequenceClassificationHead, "mean")):
        model = on_meta(lambda head=head, pool=pool: FineTuner(GPT(config), head(16, 3, pool)))
        assert model(ids(2, 7), padding).shape == (2, 3)
    qa = on_meta(lambda: FineTuner(GPT(config), SpanQAHead(16), bidirectional=True))
    assert qa(ids(2, 7), padding).shape == (2, 7, 2)


def test_vit_on_meta():
    model = on_meta(lambda: ViT(8, 4, 1, n_classes=3, d_model=16, n_heads=2, n_layers=1))
    assert model(torch.zeros(2, 1, 8, 8, device=META)).shape == (2, 3)


def test_attention_with_a_cache_on_meta():
    layer = on_meta(lambda: MultiHeadAttention(16, 4, rope=True, n_kv_heads=1, max_positions=8))
    x = torch.zeros(2, 3, 16, device=META)
    assert layer(x).device == META


def test_classic_models_on_meta():
    assert on_meta(lambda: FixedWindowLM(30, 3, 8, 16))(ids(4, 3)).shape == (4, 30)
    assert on_meta(lambda: SkipGram(30, 8)).scores(ids(5)).shape == (5, 30)
    lengths = torch.tensor([5, 3], device=META)
    for cell in ("rnn", "lstm"):
        lm = on_meta(lambda cell=cell: RNNLanguageModel(30, 8, 16, cell=cell))
        assert lm(ids(2, 5))[0].shape == (2, 5, 30)
        classifier = on_meta(
            lambda cell=cell: SequenceClassifier(30, 8, 16, 3, cell, "mean", bidirectional=True)
        )
        assert classifier(ids(2, 5), lengths).shape == (2, 3)
        assert on_meta(lambda cell=cell: SequenceTagger(30, 8, 16, 4, cell))(
            ids(2, 5), lengths
        ).shape == (2, 5, 4)
    for layer in (RNN, LSTM):
        recurrent = on_meta(lambda layer=layer: layer(8, 16, num_layers=2, bidirectional=True))
        output, _ = recurrent(torch.zeros(5, 2, 8, device=META))
        assert output.shape == (5, 2, 32)
    for attention in (None, "dot", "bilinear"):
        config = Seq2SeqConfig(20, 20, 8, 16, attention=attention)
        model = on_meta(lambda config=config: Seq2Seq(config))
        mask = torch.ones(2, 6, dtype=torch.bool, device=META)
        assert model(ids(2, 6), mask, ids(2, 4)).shape == (2, 4, 20)


def test_a_cpu_tensor_inside_a_forward_pass_fails_on_meta():
    """The test is sharp: a module that builds its mask on the CPU is caught."""

    class CpuMask(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.masked_fill(torch.ones(x.shape, dtype=torch.bool).tril(), 0.0)

    with pytest.raises((RuntimeError, NotImplementedError)):
        CpuMask()(torch.zeros(3, 3, device=META))
