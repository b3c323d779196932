"""llmcourse.training.objective_batches and data.documents.topic_documents: the three
pretraining objectives of Chapter 9 on the same sentence pairs."""

from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from llmcourse.data import IGNORE_INDEX
from llmcourse.data.documents import special_id, topic_documents
from llmcourse.data.grammar import english_grammar
from llmcourse.data.labelled import WordClasses
from llmcourse.models import BERT, T5, load_pretrained
from llmcourse.modules import TransformerConfig
from llmcourse.training import fill_spans, next_sentence_pairs
from llmcourse.training.objective_batches import (
    N_SENTINELS,
    BERTForPretraining,
    causal_lm_batches,
    consecutive_pairs,
    encode_documents,
    masked_lm_nsp_batches,
    masked_lm_nsp_loss,
    pair_ids,
    span_corruption_batches,
    span_corruption_loss,
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_pretrained()[1]


@pytest.fixture(scope="module")
def documents(tokenizer):
    return encode_documents(tokenizer, topic_documents(400, seed=5))


def test_topic_documents_share_their_subject_noun():
    docs = topic_documents(300, seed=2, sentences_per_document=3)
    nouns = WordClasses.of(english_grammar()).nouns
    assert docs and all(len(doc) == 3 for doc in docs)
    for doc in docs:
        assert len({next(w for w in s if w in nouns) for s in doc}) == 1
    sentences = [s.tokens for s in english_grammar().generate(300, seed=2)]
    assert all(s in sentences for doc in docs for s in doc)
    topics = Counter(next(w for w in s if w in nouns) for s in sentences)
    assert sum(map(len, docs)) == sum(n - n % 3 for n in topics.values())  # remainders dropped
    assert topic_documents(300, seed=2, sentences_per_document=3) == docs
    with pytest.raises(ValueError, match="sentences_per_document"):
        topic_documents(10, sentences_per_document=1)
    with pytest.raises(ValueError, match="n_sentences"):
        topic_documents(0)


def test_special_id_names_the_missing_token(tokenizer):
    assert special_id(tokenizer, "<|pad|>") == tokenizer.specials["<|pad|>"]
    with pytest.raises(ValueError, match="<|cls|>"):
        special_id(tokenizer, "<|cls|>")


def test_causal_batches_shift_by_one_and_ignore_padding(tokenizer, documents):
    pairs = consecutive_pairs(documents)
    pad = tokenizer.specials["<|pad|>"]
    inputs, targets = next(causal_lm_batches(tokenizer, pairs, batch_size=8, seed=1))
    real = targets != IGNORE_INDEX
    assert torch.equal(inputs[:, 1:][real[:, :-1]], targets[:, :-1][real[:, :-1]])
    real_inputs = torch.cat([torch.ones_like(real[:, :1]), real[:, :-1]], dim=1)
    assert torch.equal(inputs == pad, ~real_inputs)
    eot = tokenizer.specials["<|endoftext|>"]
    texts = {tuple(pair_ids(a, b, eot)) for a, b in pairs}
    rows = torch.cat([inputs[:, :1], targets], 1)
    for row, keep in zip(rows, torch.cat([real[:, :1], real], 1), strict=True):
        assert tuple(row[keep].tolist()) in texts


def test_nsp_batches_label_the_true_successor(tokenizer, documents):
    nsp = next_sentence_pairs(documents, seed=0)
    eot = tokenizer.specials["<|endoftext|>"]
    inputs, real, labels, is_next = next(masked_lm_nsp_batches(tokenizer, nsp, 16, seed=2))
    originals = torch.where(labels == IGNORE_INDEX, inputs, labels)
    specials = torch.tensor(list(tokenizer.specials.values()))
    assert (labels[torch.isin(originals, specials)] == IGNORE_INDEX).all()
    successors = set(map(lambda p: (tuple(p[0]), tuple(p[1])), consecutive_pairs(documents)))
    for row, keep, label in zip(originals, real, is_next.tolist(), strict=True):
        ids = row[keep].tolist()
        cut = ids.index(eot, 1)
        assert ((tuple(ids[1:cut]), tuple(ids[cut + 1 :])) in successors) == bool(label)


def test_span_batches_fill_back_to_the_pair(tokenizer, documents):
    pairs = consecutive_pairs(documents)
    eot = tokenizer.specials["<|endoftext|>"]
    sentinels = [tokenizer.specials[f"<|extra_{i}|>"] for i in range(N_SENTINELS)]
    texts = {tuple(pair_ids(a, b, eot)) for a, b in pairs}
    src, real, tgt_in, tgt_out = next(span_corruption_batches(tokenizer, pairs, 8, seed=3))
    for s, keep, t_in, t_out in zip(src, real, tgt_in, tgt_out, strict=True):
        target = t_out[t_out != IGNORE_INDEX]
        assert t_in[0] == eot and torch.equal(t_in[1 : len(target)], target[:-1])
        assert tuple(fill_spans(s[keep], target, sentinels).tolist()) in texts


def config(vocab_size):
    return TransformerConfig(
        vocab_size=vocab_size, block_size=64, d_model=16, n_heads=2, n_layers=1
    )


def test_masked_lm_nsp_loss_equals_the_loss_over_all_positions(tokenizer, documents):
    torch.manual_seed(0)
    model = BERTForPretraining(BERT(config(len(tokenizer))))
    nsp = next_sentence_pairs(documents, seed=0)
    batch = next(masked_lm_nsp_batches(tokenizer, nsp, 8, seed=4))
    inputs, real, labels, is_next = batch
    logits = model.bert(inputs, real)  # the output layer at every position
    hidden = model.bert.hidden_states(inputs, real)
    expected = F.cross_entropy(logits.flatten(0, 1), labels.flatten()) + F.cross_entropy(
        model.nsp(hidden[:, 0]), is_next
    )
    assert torch.allclose(masked_lm_nsp_loss(model, batch), expected, atol=1e-6)
    with pytest.raises(ValueError, match="bert must be a BERT"):
        BERTForPretraining(torch.nn.Linear(2, 2))


def test_span_corruption_loss_is_the_decoder_cross_entropy(tokenizer, documents):
    torch.manual_seed(0)
    model = T5(config(len(tokenizer)))
    batch = next(span_corruption_batches(tokenizer, consecutive_pairs(documents), 4, seed=5))
    src, real, tgt_in, tgt_out = batch
    total, count = 0.0, 0
    for i in range(len(src)):  # one example at a time, without padding
        n = int((tgt_out[i] != IGNORE_INDEX).sum())
        logits = model(src[i : i + 1, real[i]], tgt_in[i : i + 1, :n])
        total += F.cross_entropy(logits[0], tgt_out[i, :n], reduction="sum").item()
        count += n
    assert span_corruption_loss(model, batch).item() == pytest.approx(total / count, abs=1e-5)


def test_batch_makers_reject_empty_pairs(tokenizer):
    for make in (causal_lm_batches, masked_lm_nsp_batches, span_corruption_batches):
        with pytest.raises(ValueError, match="pairs is empty"):
            next(make(tokenizer, []))
    with pytest.raises(ValueError, match="at least two documents"):
        encode_documents(tokenizer, [[["the", "cat"]]])
