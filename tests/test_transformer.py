"""Unit tests of llmcourse.modules.transformer: the configuration, blocks, GPT, BERT and T5."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
import torch.nn.functional as F

from llmcourse.data import random_blocks
from llmcourse.generation import sample
from llmcourse.models import BERT, GPT, T5, gpt2_config, gpt_parameter_counts, llama_config
from llmcourse.modules import (
    NORMS,
    POSITIONS,
    LayerNorm,
    RMSNorm,
    TransformerBlock,
    TransformerConfig,
    causal_mask,
    record_attention,
)
from llmcourse.training import next_token_loss, train


def config(**changes) -> TransformerConfig:
    base = dict(vocab_size=23, block_size=12, d_model=16, n_heads=4, n_layers=2)
    return TransformerConfig(**{**base, **changes})


def ids(batch, time, seed=0, vocab_size=23):
    return torch.randint(
        0, vocab_size, (batch, time), generator=torch.Generator().manual_seed(seed)
    )


# ------------------------------------------------------------------------- config
def test_config_defaults():
    c = config()
    assert c.d_ff is None and c.ffn_size == 64 and c.d_head == 4
    assert dataclasses.replace(c, d_model=32).ffn_size == 128
    assert config(d_ff=40).ffn_size == 40


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vocab_size": 0}, "vocab_size must be an integer >= 1, got 0"),
        ({"n_layers": 1.5}, "n_layers must be an integer >= 1"),
        ({"d_model": 18}, r"d_model \(18\) must be divisible by n_heads \(4\)"),
        ({"d_ff": 0}, "d_ff must be an integer >= 1, got 0"),
        ({"n_kv_heads": 3}, r"n_kv_heads \(3\) must divide n_heads \(4\)"),
        ({"activation": "swish"}, "activation must be one of"),
        ({"norm_eps": 0.0}, "norm_eps must be a finite number > 0"),
        ({"rope_theta": 1.0}, "rope_theta must be > 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"position": "alibi"}, "position must be one of"),
        ({"norm": "batch"}, "norm must be one of"),
        ({"activation": "tanh"}, "activation must be one of"),
        ({"d_model": 15, "n_heads": 3, "position": "sinusoidal"}, "need an even d_model"),
        ({"d_model": 12, "n_heads": 4, "position": "rope"}, "need an even head size, got 3"),
    ],
)
def test_config_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        config(**changes)


# ------------------------------------------------------------------------- blocks
def test_block_keeps_the_shape_and_is_residual():
    torch.manual_seed(0)
    block = TransformerBlock(config())
    x = torch.randn(3, 7, 16)
    assert block(x).shape == (3, 7, 16)
    with torch.no_grad():  # zero the ends of both branches: the block is the identity
        for linear in (block.attn.w_o, block.ffn.down):
            linear.weight.zero_()
            linear.bias.zero_()
    torch.testing.assert_close(block(x), x)


def test_post_norm_block_output_is_normalised():
    torch.manual_seed(0)
    y = TransformerBlock(config(pre_norm=False))(5 * torch.randn(2, 6, 16) + 3)
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(2, 6), atol=1e-3, rtol=0)


def test_block_norm_choice():
    assert isinstance(TransformerBlock(config(norm="rms")).attn_norm, RMSNorm)
    assert isinstance(TransformerBlock(config()).ffn_norm, LayerNorm)


def test_block_context_must_match_cross_attention():
    x = torch.zeros(1, 3, 16)
    with pytest.raises(ValueError, match="has no cross-attention"):
        TransformerBlock(config())(x, context=x)
    with pytest.raises(ValueError, match="it has cross-attention"):
        TransformerBlock(config(), cross_attention=True)(x)


# ---------------------------------------------------------------------------- GPT
@pytest.mark.parametrize("position", POSITIONS)
def test_gpt_shapes(position):
    torch.manual_seed(0)
    model = GPT(config(position=position))
    assert model(ids(3, 12)).shape == (3, 12, 23)
    assert model(ids(2, 1)).shape == (2, 1, 23)
    assert model.hidden_states(ids(2, 5)).shape == (2, 5, 16)


@pytest.mark.parametrize(
    ("position", "norm", "pre_norm"), list(itertools.product(POSITIONS, NORMS, [True, False]))
)
def test_gpt_does_not_see_the_future(position, norm, pre_norm):
    torch.manual_seed(0)
    model = GPT(config(position=position, norm=norm, pre_norm=pre_norm)).eval()
    x = ids(2, 10)
    changed = x.clone()
    changed[:, 6] = (x[:, 6] + 1) % 23
    before, after = model(x), model(changed)
    torch.testing.assert_close(after[:, :6], before[:, :6])
    assert not torch.allclose(after[:, 6:], before[:, 6:])


def test_a_given_mask_replaces_the_causal_mask():
    torch.manual_seed(0)
    model = GPT(config()).eval()
    x = ids(2, 8)
    torch.testing.assert_close(model(x, causal_mask(8)), model(x))
    full = torch.ones(8, 8, dtype=torch.bool)  # bidirectional: position 0 sees the future
    changed = x.clone()
    changed[:, 7] = (x[:, 7] + 1) % 23
    assert not torch.allclose(model(changed, full)[:, 0], model(x, full)[:, 0])
    # a sliding window of 3: position 7 no longer sees position 0
    window = causal_mask(8) & ~causal_mask(8).tril(-3)
    changed = x.clone()
    changed[:, 0] = (x[:, 0] + 1) % 23
    torch.testing.assert_close(model(changed, window)[:, 7], model(x, window)[:, 7])
    assert not torch.allclose(model(changed)[:, 7], model(x)[:, 7])
    with record_attention(model) as layers:
        model(x, window)
    assert layers[-1].last_weights.shape == (2, 4, 8, 8)
    assert (layers[-1].last_weights[..., ~window] == 0).all()


def test_dropout_only_while_training():
    torch.manual_seed(0)
    model = GPT(config(dropout=0.3))
    x = ids(2, 6)
    assert not torch.allclose(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x))


def test_weight_tying_shares_storage():
    tied, untied = GPT(config()), GPT(config(tie_weights=False))
    assert tied.lm_head.weight is tied.embed.weight
    assert tied.lm_head.weight.data_ptr() == tied.embed.weight.data_ptr()
    assert untied.lm_head.weight.data_ptr() != untied.embed.weight.data_ptr()
    with torch.no_grad():
        tied.embed.weight[3, 0] = 42.0
    assert tied.lm_head.weight[3, 0] == 42.0
    count = sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters())
    assert count == 23 * 16


@pytest.mark.parametrize(
    ("position", "norm", "pre_norm", "tie_weights", "bias"),
    list(itertools.product(POSITIONS, NORMS, [True, False], [True, False], [True, False])),
)
def test_parameter_count_formula(position, norm, pre_norm, tie_weights, bias):
    c = config(
        position=position,
        norm=norm,
        pre_norm=pre_norm,
        tie_weights=tie_weights,
        bias=bias,
        d_ff=24,
        n_layers=3,
    )
    counts = gpt_parameter_counts(c)
    assert counts["total"] == sum(p.numel() for p in GPT(c).parameters())
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


@pytest.mark.parametrize("n_kv_heads", [None, 2, 1])
@pytest.mark.parametrize("activation", ["gelu", "swiglu"])
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_count_formula_with_grouped_query_attention_and_swiglu(
    n_kv_heads, activation, bias
):
    c = config(n_kv_heads=n_kv_heads, activation=activation, bias=bias, tie_weights=False)
    counts = gpt_parameter_counts(c)
    assert counts["total"] == sum(p.numel() for p in GPT(c).parameters())


def test_swiglu_default_width_keeps_the_parameters_of_the_4x_mlp():
    # 2/3 of 4 d, rounded up to a multiple of 8: three d x f matrices ~ two d x 4d ones
    for d_model in (16, 64, 128, 768, 4096):
        c = config(d_model=d_model, n_heads=4, activation="swiglu")
        assert c.ffn_size % 8 == 0 and 0 <= c.ffn_size - 8 * d_model / 3 < 8
        assert abs(3 * c.ffn_size - 2 * 4 * d_model) <= 3 * 8


def test_llama_config_and_its_exact_parameter_count():
    # Llama 2 7B: vocab 32000, d 4096, 32 layers, 32 heads, SwiGLU 11008, untied: 6.74 B
    c = llama_config(32000, 4096, 4096, 32, 32, d_ff=11008)  # 8/3 d rounded up to 256
    assert (c.position, c.norm, c.activation, c.bias, c.tie_weights) == (
        "rope", "rms", "swiglu", False, False,
    )  # fmt: skip
    assert gpt_parameter_counts(c)["total"] == 6_738_415_616
    # Llama 2 70B shares each key-value head among 8 query heads (GQA)
    big = llama_config(32000, 4096, 8192, 64, 80, n_kv_heads=8, d_ff=28672)
    assert gpt_parameter_counts(big)["total"] == 68_976_648_192
    small = llama_config(23, 12, 16, 4, 2, n_kv_heads=2)
    model = GPT(small)
    assert gpt_parameter_counts(small)["total"] == sum(p.numel() for p in model.parameters())
    assert model.lm_head.weight is not model.embed.weight
    assert gpt2_config(23, 12, 16, 4, 2) == config()


def test_norm_eps_and_rope_theta_reach_the_layers():
    model = GPT(config(norm="rms", norm_eps=1e-3, position="rope", rope_theta=500.0))
    block = model.transformer.blocks[0]
    assert block.attn_norm.eps == 1e-3 and model.transformer.final_norm.eps == 1e-3
    assert block.attn.rope.base == 500.0
    assert GPT(config(norm="rms")).transformer.blocks[0].attn_norm.eps == 1e-6  # its default
    assert GPT(config()).transformer.blocks[0].attn_norm.eps == 1e-5


def test_rope_positions_per_sequence_equal_shifted_sequences():
    """Left padding with positions counted from each sequence's first real token gives the
    real tokens the logits of the unpadded sequence."""
    torch.manual_seed(0)
    model = GPT(config(position="rope")).double().eval()
    real = ids(1, 6)
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), real], dim=1)  # 3 pads first
    keep = torch.tensor([False] * 3 + [True] * 6)
    mask = causal_mask(9) & keep[None, :] | torch.eye(9, dtype=torch.bool)  # pads see themselves
    positions = torch.tensor([[0, 0, 0, 0, 1, 2, 3, 4, 5]])
    logits = model(padded, mask=mask, positions=positions)
    torch.testing.assert_close(logits[:, 3:], model(real), atol=1e-12, rtol=0)
    shared = model(padded, mask=mask, positions=positions[0])  # (time,) is the same for all
    torch.testing.assert_close(shared, logits)


def test_parameter_count_of_gpt2_small_and_the_12_l_d2_rule():
    # GPT-2 small: 124,439,808 parameters (vocab 50257, context 1024, d 768, 12 layers)
    c = TransformerConfig(50257, 1024, 768, 12, 12)
    counts = gpt_parameter_counts(c)
    assert counts["total"] == 124_439_808
    blocks = counts["attention"] + counts["feed-forward"]
    assert blocks == 12 * 12 * 768**2 + 12 * (4 * 768 + 4 * 768 + 768)  # 12 L d^2 + biases
    assert counts["attention"] == 12 * (4 * 768**2 + 4 * 768)


def test_initialisation_follows_gpt2():
    torch.manual_seed(0)
    model = GPT(config(d_model=64, n_layers=8, vocab_size=500))
    assert abs(model.embed.weight.std().item() - 0.02) < 0.002
    block = model.transformer.blocks[0]
    assert abs(block.attn.w_q.weight.std().item() - 0.02) < 0.002
    assert abs(block.attn.w_o.weight.std().item() - 0.02 / 4) < 0.0005  # / sqrt(2 * 8)
    assert (block.attn.w_q.bias == 0).all()


def test_gpt_input_errors():
    model = GPT(config())
    with pytest.raises(ValueError, match=r"idx must be a non-empty \(batch, time\) long tensor"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"idx must be a non-empty \(batch, time\) long tensor"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="positions apply to rotary models"):
        model(ids(1, 4), positions=torch.arange(4))
    with pytest.raises(ValueError, match="has 13 positions; the model reads 1 to 12"):
        model(ids(1, 13))
    with pytest.raises(ValueError, match=r"ids must be in \[0, 23\), got 0..23"):
        model(torch.tensor([[0, 23]]))
    with pytest.raises(TypeError, match="bool tensor"):
        model(ids(1, 4), torch.ones(4, 4))


# ----------------------------------------------------------------------- BERT, T5
def test_bert_sees_both_directions_and_ignores_padding():
    torch.manual_seed(0)
    model = BERT(config()).eval()
    x = ids(2, 9)
    assert model(x).shape == (2, 9, 23) and model.hidden_states(x).shape == (2, 9, 16)
    changed = x.clone()
    changed[:, 8] = (x[:, 8] + 1) % 23
    assert not torch.allclose(model(changed)[:, 0], model(x)[:, 0])  # the future matters
    padding = torch.tensor([[True] * 9, [True] * 5 + [False] * 4])
    out = model(x, padding)
    changed = x.clone()
    changed[1, 5:] = 0
    torch.testing.assert_close(model(changed, padding)[1, :5], out[1, :5])
    torch.testing.assert_close(model(x[1:, :5])[0], out[1, :5], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="padding_mask must have the shape of idx"):
        model(x, padding[:, :5])
    with pytest.raises(ValueError, match="padding_mask must be a"):
        model(x, padding.long())


def test_t5_encoder_decoder():
    torch.manual_seed(0)
    model = T5(config(n_layers=1)).eval()
    src, tgt = ids(2, 7, seed=1), ids(2, 5, seed=2)
    logits = model(src, tgt)
    assert logits.shape == (2, 5, 23)
    assert model.lm_head.weight is model.embed.weight
    with record_attention(model.decoder.blocks[0].cross_attn) as (cross,):
        model(src, tgt)
    assert cross.last_weights.shape == (2, 4, 5, 7)
    # the decoder is causal
    changed = tgt.clone()
    changed[:, 3] = (tgt[:, 3] + 1) % 23
    torch.testing.assert_close(model(src, changed)[:, :3], logits[:, :3])
    # every target position reads the whole source
    changed = src.clone()
    changed[:, 6] = (src[:, 6] + 1) % 23
    assert not torch.allclose(model(changed, tgt)[:, 0], logits[:, 0])
    # source padding is ignored by the encoder and the cross-attention
    padding = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    out = model(src, tgt, padding)
    changed = src.clone()
    changed[1, 4:] = 0
    torch.testing.assert_close(model(changed, tgt, padding), out)
    torch.testing.assert_close(model(src[1:, :4], tgt[1:])[0], out[1], atol=1e-5, rtol=1e-5)
    memory = model.encode(src, padding)
    assert memory.shape == (2, 7, 16)
    torch.testing.assert_close(model.decode(tgt, memory, padding), out)
    with pytest.raises(ValueError, match="memory must be"):
        model.decode(tgt, memory[:1])


# ---------------------------------------------------------------------- training
def test_random_blocks():
    stream = torch.arange(100)
    batches = random_blocks(stream, block_size=8, batch_size=5, seed=3)
    inputs, targets = next(batches)
    assert inputs.shape == targets.shape == (5, 8)
    assert torch.equal(targets, inputs + 1)  # the next token of an arange is one more
    assert torch.equal(inputs[:, 1:], inputs[:, :-1] + 1)
    assert inputs.min() >= 0 and targets.max() <= 99
    again = next(random_blocks(stream, block_size=8, batch_size=5, seed=3))
    assert torch.equal(again[0], inputs)
    with pytest.raises(ValueError, match="a window needs block_size"):
        next(random_blocks(torch.arange(8), 8, 2))
    with pytest.raises(ValueError, match="1-D long tensor"):
        next(random_blocks(torch.zeros(50), 8, 2))


def test_next_token_loss_is_the_cross_entropy():
    torch.manual_seed(0)
    model = GPT(config())
    inputs, targets = next(random_blocks(torch.randint(0, 23, (200,)), 12, 4))
    logits = model(inputs)
    expected = -logits.log_softmax(-1).gather(-1, targets[..., None]).mean()
    torch.testing.assert_close(next_token_loss(model, (inputs, targets)), expected)
    torch.testing.assert_close(
        expected, F.cross_entropy(logits.reshape(-1, 23), targets.reshape(-1))
    )


def test_gpt_learns_a_periodic_sequence():
    # "0 1 2 ... 6 0 1 2 ...": after one period every next token is determined
    torch.manual_seed(0)
    stream = torch.arange(7).repeat(40)
    model = GPT(config(vocab_size=7, d_model=32))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread avoids waiting on a busy machine
    try:
        history = train(
            model, next_token_loss, random_blocks(stream, 12, 8), steps=60, lr=1e-2, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    assert history.train_loss[0] > 1.5 and history.train_loss[-1] < 0.05
    out = sample(model, torch.tensor([[3]]), 10, generator=torch.Generator().manual_seed(0))
    assert out[0].tolist() == [3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6]
