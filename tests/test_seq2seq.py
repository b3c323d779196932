"""The encoder-decoder and its attention: masking, shapes, causality, decoding, learning.

Parity references: a softmax of ``torch.bmm`` scores written out in the test, and
``torch.nn.functional.scaled_dot_product_attention`` with ``scale=1`` and the same mask.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from llmcourse.classic import (
    BilinearAttention,
    DotAttention,
    Encoder,
    Seq2Seq,
    Seq2SeqConfig,
    decode_accuracy,
    masked_softmax,
    translation_loss,
)
from llmcourse.training import train

PAD, BOS, EOS = 0, 2, 3
ATTENTIONS = [None, "dot", "bilinear", "additive"]


def right_padding_mask(lengths: list[int], width: int | None = None) -> torch.Tensor:
    width = width or max(lengths)
    return torch.arange(width) < torch.tensor(lengths).unsqueeze(1)


def model(attention: str | None, seed: int = 0, vocab: int = 12, hidden: int = 16) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(vocab, vocab, emb_size=8, hidden_size=hidden, attention=attention))


def random_batch(seed: int, lengths=(5, 2, 4), tgt_len: int = 6, vocab: int = 12):
    generator = torch.Generator().manual_seed(seed)
    mask = right_padding_mask(list(lengths))
    src = torch.randint(4, vocab, mask.shape, generator=generator).masked_fill(~mask, PAD)
    tgt_in = torch.randint(4, vocab, (len(lengths), tgt_len), generator=generator)
    tgt_in[:, 0] = BOS
    return src, mask, tgt_in


# ------------------------------------------------------------------- masked softmax
def test_masked_softmax_sums_to_one_and_is_exactly_zero_on_padding():
    scores = torch.randn(4, 7, generator=torch.Generator().manual_seed(0)) * 5
    mask = right_padding_mask([7, 1, 3, 5])
    weights = masked_softmax(scores, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4))
    assert (weights[~mask] == 0).all()
    assert (weights[mask] > 0).all()
    for row in range(4):  # the plain softmax over the real positions only
        torch.testing.assert_close(weights[row, mask[row]], scores[row, mask[row]].softmax(-1))


def test_masked_softmax_handles_large_scores_and_extra_dimensions():
    scores = torch.tensor([[[1000.0, 0.0, -1000.0]], [[5.0, 5.0, 1e9]]])
    mask = torch.tensor([[[True, True, True]], [[True, True, False]]])
    weights = masked_softmax(scores, mask)
    torch.testing.assert_close(weights, torch.tensor([[[1.0, 0.0, 0.0]], [[0.5, 0.5, 0.0]]]))


@pytest.mark.parametrize(
    ("mask", "error", "message"),
    [
        (torch.ones(2, 3), TypeError, "bool"),
        (torch.ones(2, 4, dtype=torch.bool), ValueError, "shape"),
        (torch.tensor([[True, False, False], [False] * 3]), ValueError, "at least one True"),
    ],
)
def test_masked_softmax_rejects_bad_masks(mask, error, message):
    with pytest.raises(error, match=message):
        masked_softmax(torch.zeros(2, 3), mask)


# ------------------------------------------------------------------------ attention
def attention_inputs(seed: int, batch=3, src_len=6, d=5, lengths=(6, 2, 4)):
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(batch, d, generator=generator)
    keys = torch.randn(batch, src_len, d, generator=generator)
    return query, keys, right_padding_mask(list(lengths), src_len)


def test_dot_attention_matches_a_softmax_of_bmm():
    query, keys, mask = attention_inputs(1)
    context, weights = DotAttention()(query, keys, mask)
    scores = torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)  # h^d . h^e_j for every j
    expected = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, torch.bmm(expected.unsqueeze(1), keys).squeeze(1))


def test_dot_attention_matches_torch_scaled_dot_product_attention():
    query, keys, mask = attention_inputs(2)
    context, _ = DotAttention()(query, keys, mask)
    expected = F.scaled_dot_product_attention(
        query.unsqueeze(1), keys, keys, attn_mask=mask.unsqueeze(1), scale=1.0
    ).squeeze(1)
    torch.testing.assert_close(context, expected)


def test_attention_ignores_whatever_is_in_the_padded_positions():
    query, keys, mask = attention_inputs(3)
    torch.manual_seed(0)
    for attention in (DotAttention(), BilinearAttention(5, 5)):
        context, weights = attention(query, keys, mask)
        noisy = torch.where(mask.unsqueeze(-1), keys, 1e3 * torch.randn_like(keys))
        context2, weights2 = attention(query, noisy, mask)
        assert torch.equal(context, context2) and torch.equal(weights, weights2)
        assert (weights[~mask] == 0).all()


def test_bilinear_attention_with_the_identity_is_dot_attention():
    query, keys, mask = attention_inputs(4)
    bilinear = BilinearAttention(5, 5)
    with torch.no_grad():
        bilinear.weight.copy_(torch.eye(5))
    for got, expected in zip(
        bilinear(query, keys, mask), DotAttention()(query, keys, mask), strict=True
    ):
        torch.testing.assert_close(got, expected)


def test_bilinear_scores_are_q_w_k_and_sizes_may_differ():
    generator = torch.Generator().manual_seed(5)
    query, keys = torch.randn(2, 3, generator=generator), torch.randn(2, 4, 7, generator=generator)
    bilinear = BilinearAttention(3, 7)
    w = bilinear.weight.detach()
    expected = torch.stack(
        [torch.stack([query[b] @ w @ keys[b, j] for j in range(4)]) for b in range(2)]
    )
    torch.testing.assert_close(bilinear.score(query, keys), expected)
    context, weights = bilinear(query, keys, torch.ones(2, 4, dtype=torch.bool))
    assert context.shape == (2, 7) and weights.shape == (2, 4)


def test_attention_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one size"):
        DotAttention().score(torch.zeros(2, 3), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"batch, d_query"):
        DotAttention().score(torch.zeros(2, 3), torch.zeros(3, 4, 3))
    with pytest.raises(ValueError, match="queries of size 3"):
        BilinearAttention(3, 5).score(torch.zeros(2, 5), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match="key_size"):
        BilinearAttention(3, 0)


# -------------------------------------------------------------------------- encoder
def test_encoder_final_state_is_the_state_at_the_last_real_token():
    torch.manual_seed(0)
    encoder = Encoder(12, 8, 16)
    src, mask, _ = random_batch(0)
    states, final = encoder(src, mask)
    assert states.shape == (3, 5, 16) and final.shape == (3, 16)
    for row, length in enumerate(mask.sum(1).tolist()):  # each sentence alone, unpadded
        alone, _ = encoder(src[row : row + 1, :length], mask[row : row + 1, :length])
        torch.testing.assert_close(states[row, :length], alone[0])
        torch.testing.assert_close(final[row], alone[0, -1])


# -------------------------------------------------------------------------- Seq2Seq
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_forward_shapes(attention):
    src, mask, tgt_in = random_batch(1)
    assert model(attention)(src, mask, tgt_in).shape == (3, 6, 12)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_padded_source_tokens_do_not_change_the_output(attention):
    net = model(attention)
    src, mask, tgt_in = random_batch(2)
    other = src.masked_fill(~mask, 7)  # different ids where the mask is False
    assert torch.equal(net(src, mask, tgt_in), net(other, mask, tgt_in))
    # a batch padded wider than needed gives the same result too
    wide = torch.cat([src, torch.zeros(3, 2, dtype=torch.long)], dim=1)
    wide_mask = torch.cat([mask, torch.zeros(3, 2, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(net(wide, wide_mask, tgt_in), net(src, mask, tgt_in))


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_logits_at_step_t_do_not_depend_on_later_target_tokens(attention):
    net = model(attention)
    src, mask, tgt_in = random_batch(3)
    logits = net(src, mask, tgt_in)
    for t in range(tgt_in.shape[1] - 1):
        changed = tgt_in.clone()
        changed[:, t + 1 :] = torch.randint(4, 12, changed[:, t + 1 :].shape)
        changed_logits = net(src, mask, changed)
        assert torch.equal(changed_logits[:, : t + 1], logits[:, : t + 1])
        assert not torch.allclose(changed_logits[:, t + 1 :], logits[:, t + 1 :])


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_teacher_forcing_equals_stepping_the_decoder(attention):
    net = model(attention)
    src, mask, tgt_in = random_batch(4)
    enc_states, enc_final = net.encoder(src, mask)
    logits, weights = net.decoder(tgt_in, enc_states, enc_final, mask)
    state = enc_final
    for t in range(tgt_in.shape[1]):
        step_logits, state, step_weights = net.decoder.step(
            tgt_in[:, t], state, enc_states, enc_final, mask
        )
        torch.testing.assert_close(logits[:, t], step_logits)
        if attention is None:
            assert weights is None and step_weights is None
        else:
            torch.testing.assert_close(weights[:, t], step_weights)
            torch.testing.assert_close(weights[:, t].sum(-1), torch.ones(3))
            assert (weights[:, t][~mask] == 0).all()


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_gradients_reach_the_encoder_and_the_attention(attention):
    net = model(attention)
    src, mask, tgt_in = random_batch(5)
    batch = SimpleNamespace(src=src, src_mask=mask, tgt_in=tgt_in, tgt_out=tgt_in.roll(-1, 1))
    translation_loss(net, batch).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    if attention == "bilinear":
        assert net.decoder.attention.weight.grad.abs().sum() > 0


def test_translation_loss_ignores_padded_targets():
    net = model("dot")
    src, mask, tgt_in = random_batch(6)
    tgt_out = tgt_in.roll(-1, 1)
    tgt_out[1, 2:] = PAD
    batch = SimpleNamespace(src=src, src_mask=mask, tgt_in=tgt_in, tgt_out=tgt_out)
    logits = net(src, mask, tgt_in)
    log_probs = logits.log_softmax(-1).gather(-1, tgt_out.unsqueeze(-1)).squeeze(-1)
    expected = -log_probs[tgt_out != PAD].mean()
    torch.testing.assert_close(translation_loss(net, batch), expected)


def test_bilinear_and_dot_models_have_the_same_parameters_but_w():
    sizes = {a: sum(p.numel() for p in model(a).parameters()) for a in ATTENTIONS}
    assert sizes[None] == sizes["dot"] == sizes["bilinear"] - 16 * 16


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (dict(src=torch.zeros(3, 5)), ValueError, "src must be"),
        (dict(src=torch.full((3, 5), 12)), ValueError, r"src ids must be in \[0, 12\)"),
        (dict(mask=torch.ones(3, 5)), TypeError, "bool"),
        (dict(mask=torch.ones(3, 4, dtype=torch.bool)), ValueError, "shape"),
        (dict(mask=right_padding_mask([5, 0, 4])), ValueError, "at least one True"),
        (dict(mask=torch.tensor([[False, True] * 2 + [True]] * 3)), ValueError, "right padding"),
        (dict(tgt_in=torch.full((2, 6), BOS)), ValueError, "2 rows"),
        (dict(tgt_in=torch.full((3, 6), BOS, dtype=torch.int32)), ValueError, "tgt_in must be"),
        (dict(tgt_in=torch.zeros(3, 0, dtype=torch.long)), ValueError, "tgt_in must be"),
    ],
)
def test_forward_rejects_bad_inputs(change, error, message):
    src, mask, tgt_in = random_batch(7)
    args = dict(src=src, mask=mask, tgt_in=tgt_in) | change
    with pytest.raises(error, match=message):
        model("dot")(args["src"], args["mask"], args["tgt_in"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(hidden_size=0), "hidden_size must be an integer >= 1, got 0"),
        (dict(attention="concat"), "attention must be one of"),
        (dict(eos_id=12), r"eos_id must be an id in \[0, 12\)"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Seq2SeqConfig(12, 12, **kwargs)


# ------------------------------------------------------------------- greedy decoding
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_greedy_decode_shapes_and_determinism(attention):
    net = model(attention)
    src, mask, _ = random_batch(8)
    tokens, weights = net.greedy_decode(src, mask, max_len=9)
    assert tokens.dtype == torch.long and tokens.shape[0] == 3 and 1 <= tokens.shape[1] <= 9
    again, weights_again = net.greedy_decode(src, mask, max_len=9)
    assert torch.equal(tokens, again)
    if attention is None:
        assert weights is None
    else:
        assert weights.shape == (3, tokens.shape[1], 5)
        assert torch.equal(weights, weights_again)
        running = tokens != PAD
        torch.testing.assert_close(weights.sum(-1)[running], torch.ones(int(running.sum())))


def test_greedy_decode_feeds_back_its_own_predictions():
    net = model("dot")
    src, mask, _ = random_batch(9)
    net.decoder.out.bias.data[EOS] = -1e4  # never stop, so that all rows run max_len steps
    tokens, _ = net.greedy_decode(src, mask, max_len=6)
    tgt_in = torch.cat([torch.full((3, 1), BOS), tokens[:, :-1]], dim=1)
    assert torch.equal(net(src, mask, tgt_in).argmax(-1), tokens)


def test_greedy_decode_stops_at_end_of_sentence():
    net = model(None)
    src, mask, _ = random_batch(10)
    net.decoder.out.bias.data[EOS] = 1e4
    tokens, _ = net.greedy_decode(src, mask, max_len=9)
    assert tokens.tolist() == [[EOS]] * 3
    net.decoder.out.bias.data[EOS] = -1e4
    tokens, _ = net.greedy_decode(src, mask, max_len=9)
    assert tokens.shape == (3, 9) and not (tokens == EOS).any()


def test_greedy_decode_rejects_bad_max_len():
    src, mask, _ = random_batch(11)
    with pytest.raises(ValueError, match="max_len must be an integer >= 1, got 0"):
        model("dot").greedy_decode(src, mask, max_len=0)


# ------------------------------------------------------------------------- accuracy
def test_decode_accuracy_hand_example():
    reference = torch.tensor([[5, 6, 7, EOS], [5, EOS, PAD, PAD], [8, 9, EOS, PAD]])
    predicted = torch.tensor([[5, 6, 7, EOS, PAD], [5, 6, 7, 8, EOS], [8, EOS, PAD, PAD, PAD]])
    token, exact = decode_accuracy(predicted, reference, PAD)
    torch.testing.assert_close(token, torch.tensor([1.0, 0.5, 1 / 3]))
    assert exact.tolist() == [True, False, False]
    token, exact = decode_accuracy(predicted[:, :1], reference, PAD)  # cut short
    torch.testing.assert_close(token, torch.tensor([0.25, 0.5, 1 / 3]))
    with pytest.raises(ValueError, match="same batch"):
        decode_accuracy(predicted[:2], reference, PAD)


# ------------------------------------------------------------------------- learning
def copy_batches(seed: int, vocab: int = 10, max_len: int = 6, batch: int = 32):
    generator = torch.Generator().manual_seed(seed)
    while True:
        lengths = torch.randint(1, max_len + 1, (batch,), generator=generator)
        mask = torch.arange(max_len) < lengths.unsqueeze(1)
        src = torch.randint(4, vocab, (batch, max_len), generator=generator).masked_fill(~mask, PAD)
        tgt_out = torch.cat([src, torch.zeros(batch, 1, dtype=torch.long)], dim=1)
        tgt_out[torch.arange(batch), lengths] = EOS
        tgt_in = torch.cat([torch.full((batch, 1), BOS), tgt_out[:, :-1]], dim=1)
        tgt_in = tgt_in.masked_fill(tgt_in == EOS, PAD)
        yield SimpleNamespace(src=src, src_mask=mask, tgt_in=tgt_in, tgt_out=tgt_out)


def test_a_small_attention_model_learns_to_copy(one_thread):
    net = model("dot", seed=0, vocab=10, hidden=32)
    history = train(net, translation_loss, copy_batches(0), steps=250, lr=0.02, progress=False)
    first, last = sum(history.train_loss[:10]) / 10, sum(history.train_loss[-10:]) / 10
    assert last < 0.25 * first, (first, last)
    test = next(copy_batches(1, batch=200))
    net.eval()
    tokens, _ = net.greedy_decode(test.src, test.src_mask, max_len=8)
    token_accuracy, exact = decode_accuracy(tokens, test.tgt_out, PAD)
    # chance is 1 in 6 per token; a model that had learned nothing would copy nothing
    assert token_accuracy.mean() > 0.8 and exact.float().mean() > 0.5
    # a sentence copied right stops with </s> after its last token and is padded after it
    for row in torch.nonzero(exact).flatten().tolist():
        n = int(test.src_mask[row].sum())
        assert tokens[row, n] == EOS and (tokens[row, n + 1 :] == PAD).all()
