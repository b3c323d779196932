"""llmcourse.training.finetuning: the fine-tuning tasks of Chapter 9 and set_trainable."""

import pytest
import torch
from torch.nn.utils.rnn import pad_sequence

from llmcourse.data import IGNORE_INDEX
from llmcourse.data.labelled import agreement_examples
from llmcourse.data.phrases import BIO_TAGS, chunking_examples, qa_examples
from llmcourse.models import BERT, GPT, T5, FineTuner, TokenClassificationHead, load_pretrained
from llmcourse.modules import TransformerConfig
from llmcourse.training import train
from llmcourse.training.finetuning import (
    REGIMES,
    agreement_task,
    chunking_task,
    padded,
    set_trainable,
    span_qa_task,
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_pretrained()[1]


def tiny(kind, vocab_size):
    config = TransformerConfig(
        vocab_size=vocab_size, block_size=32, d_model=16, n_heads=2, n_layers=2
    )
    torch.manual_seed(0)
    return {"gpt": GPT, "bert": BERT, "t5": T5}[kind](config)


def test_padded_matches_torch_pad_sequence():
    seqs = [[5, 6, 7], [8], [9, 10]]
    ids, real = padded(seqs, pad_id=0)
    reference = pad_sequence([torch.tensor(s) for s in seqs], batch_first=True, padding_value=0)
    assert torch.equal(ids, reference)
    assert real.tolist() == [[True, True, True], [True, False, False], [True, True, False]]


def test_agreement_examples_are_encoded_with_their_number(tokenizer):
    task = agreement_task(tokenizer, n_train=20, n_test=10)
    eot = tokenizer.specials["<|endoftext|>"]
    for (ids, label), ex in zip(task.train, agreement_examples(20, seed=1), strict=True):
        assert ids[0] == eot and tokenizer.decode(ids[1:]) == " ".join(ex.prefix)
        assert label == (ex.number == "pl")
    assert len(task.test) == 10 and task.metric == "accuracy" and not task.bidirectional


def test_chunking_labels_sit_on_first_subwords(tokenizer):
    task = chunking_task(tokenizer, n_train=15, n_test=5)
    for (ids, labels), (words, tags) in zip(task.train, chunking_examples(15, 1), strict=True):
        assert len(ids) == len(labels) and labels[0] == IGNORE_INDEX
        assert [BIO_TAGS[t] for t in labels if t != IGNORE_INDEX] == tags
        assert tokenizer.decode(ids[1:]) == " ".join(words)


def test_span_qa_targets_are_the_answer_tokens(tokenizer):
    task = span_qa_task(tokenizer, n_train=30, n_test=5)
    for (ids, (start, end)), ex in zip(task.train, qa_examples(30, seed=1), strict=True):
        answer = " ".join(ex.context[ex.start : ex.end + 1])
        assert tokenizer.decode(ids[start : end + 1]).strip() == answer
        assert task.bidirectional


@pytest.mark.parametrize("make", [agreement_task, chunking_task, span_qa_task])
def test_tasks_reject_bad_arguments(tokenizer, make):
    with pytest.raises(ValueError, match="n_train"):
        make(tokenizer, n_train=0)
    with pytest.raises(ValueError, match="special token"):
        make("not a tokenizer")


def test_batches_are_seeded_draws_of_training_examples(tokenizer):
    task = agreement_task(tokenizer, n_train=30, n_test=5)
    first, again = next(task.batches(8, seed=3)), next(task.batches(8, seed=3))
    assert first == again and len(first) == 8 and all(ex in task.train for ex in first)
    with pytest.raises(ValueError, match="batch_size"):
        next(task.batches(0))


@pytest.mark.parametrize("kind", ["gpt", "bert", "t5"])
def test_set_trainable_counts_and_freezes(tokenizer, kind):
    body = tiny(kind, len(tokenizer))
    tuner = FineTuner(body, TokenClassificationHead(16, 7))
    stack = body.encoder if kind == "t5" else body.transformer
    head = sum(p.numel() for p in tuner.head.parameters())
    last = sum(p.numel() for p in stack.blocks[-1].parameters())
    last += sum(p.numel() for p in stack.final_norm.parameters())
    assert set_trainable(tuner, "head only") == head
    assert set_trainable(tuner, "last block") == head + last
    assert set_trainable(tuner, "full") == sum(p.numel() for p in tuner.parameters())
    with pytest.raises(ValueError, match="regime"):
        set_trainable(tuner, "embeddings")
    with pytest.raises(ValueError, match="FineTuner"):
        set_trainable(body, "full")


def test_frozen_parameters_do_not_move_in_training(tokenizer):
    task = chunking_task(tokenizer, n_train=16, n_test=8)
    body = tiny("gpt", len(tokenizer))
    tuner = task.tuner(body, 16)
    set_trainable(tuner, "last block")
    before = {n: p.detach().clone() for n, p in tuner.named_parameters()}
    train(tuner, task.loss_fn, task.batches(4), steps=3, lr=1e-2, weight_decay=0.1, progress=False)
    for name, p in tuner.named_parameters():
        moved = not torch.equal(before[name], p)
        assert moved == p.requires_grad, name
    assert len(REGIMES) == 3


def test_fine_tuner_reads_a_t5_through_its_encoder(tokenizer):
    t5 = tiny("t5", len(tokenizer))
    head = TokenClassificationHead(16, 3)
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    real = ids != 0
    assert torch.equal(FineTuner(t5, head)(ids, real), head(t5.encode(ids, real), real))


def test_evaluate_measures_without_changing_the_mode(tokenizer):
    task = agreement_task(tokenizer, n_train=4, n_test=40)
    tuner = task.tuner(tiny("gpt", len(tokenizer)), 16).train()
    x, real = padded([s for s, _ in task.test], tokenizer.specials["<|pad|>"])
    with torch.no_grad():
        predictions = tuner.eval()(x, real).argmax(-1)
    tuner.train()
    expected = (predictions == torch.tensor([y for _, y in task.test])).float().mean().item()
    assert task.evaluate(tuner) == pytest.approx(expected) and tuner.training
