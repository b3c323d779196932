"""Additive (Bahdanau) attention: its score written out, its masking, and its place in Seq2Seq.

The reference for the score is a loop over the source positions that applies the
formula ``v . tanh(W_q q + W_k k_j)`` one key at a time with plain matrix products.
"""

from __future__ import annotations

import pytest
import torch

from llmcourse.classic import AdditiveAttention, Seq2Seq, Seq2SeqConfig


def right_padding_mask(lengths: list[int]) -> torch.Tensor:
    return torch.arange(max(lengths)) < torch.tensor(lengths).unsqueeze(1)


def test_score_is_v_tanh_of_the_projections_summed():
    torch.manual_seed(0)
    attention = AdditiveAttention(query_size=5, key_size=3, hidden_size=4)
    query, keys = torch.randn(2, 5), torch.randn(2, 6, 3)
    w_q, w_k, v = attention.query_proj.weight, attention.key_proj.weight, attention.v
    assert w_q.shape == (4, 5) and w_k.shape == (4, 3) and v.shape == (4,)
    expected = torch.empty(2, 6)
    for b in range(2):
        for j in range(6):
            expected[b, j] = v @ torch.tanh(w_q @ query[b] + w_k @ keys[b, j])
    torch.testing.assert_close(attention.score(query, keys), expected)


def test_weights_are_a_masked_softmax_of_the_scores_and_the_context_their_average():
    torch.manual_seed(1)
    attention = AdditiveAttention(4, 4, 8)
    query, keys = torch.randn(3, 4), torch.randn(3, 5, 4)
    mask = right_padding_mask([5, 2, 3])
    context, weights = attention(query, keys, mask)
    scores = attention.score(query, keys)
    for row, n in enumerate([5, 2, 3]):
        torch.testing.assert_close(weights[row, :n], scores[row, :n].softmax(-1))
        assert (weights[row, n:] == 0).all()
        torch.testing.assert_close(context[row], weights[row, :n] @ keys[row, :n])
    # what sits in the padded positions does not matter
    noisy = keys.clone()
    noisy[~mask] = 100.0
    torch.testing.assert_close(attention(query, noisy, mask)[0], context)


def test_seq2seq_with_additive_attention_counts_its_parameters():
    def size(attention):
        torch.manual_seed(0)
        config = Seq2SeqConfig(12, 12, emb_size=8, hidden_size=16, attention=attention)
        return sum(p.numel() for p in Seq2Seq(config).parameters())

    assert size("additive") == size("dot") + 16 * (16 + 16 + 1)  # W_q, W_k and v
    torch.manual_seed(0)
    net = Seq2Seq(Seq2SeqConfig(12, 12, emb_size=8, hidden_size=16, attention="additive"))
    assert isinstance(net.decoder.attention, AdditiveAttention)


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match="hidden_size"):
        AdditiveAttention(4, 4, 0)
    with pytest.raises(ValueError, match="query_size"):
        AdditiveAttention(4.0, 4, 2)
    attention = AdditiveAttention(4, 3, 2)
    with pytest.raises(ValueError, match="queries of size 4 and keys of size 3"):
        attention.score(torch.randn(2, 3), torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="expected query"):
        attention.score(torch.randn(2, 4), torch.randn(2, 3))
