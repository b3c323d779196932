"""The grammar and prose streams of scaling experiments, and the grammar's exact floor."""

from __future__ import annotations

import math

import pytest
import torch

from llmcourse.data import (
    IGNORE_INDEX,
    SEPARATOR,
    english_grammar,
    grammar_batches,
    grammar_eval_set,
    grammar_vocabulary,
    prose_characters,
    sentence_loss,
)


def test_grammar_batches_are_fresh_sentences_in_one_stream():
    vocab = grammar_vocabulary()
    batches = grammar_batches(4, 16, seed=3)
    first, second = next(batches), next(batches)
    for inputs, targets in (first, second):
        assert inputs.shape == targets.shape == (4, 16)
        assert torch.equal(inputs[:, 1:], targets[:, :-1])
    # consecutive windows continue the stream: the last target is the next input
    assert torch.equal(first[1].flatten()[-1:], second[0].flatten()[:1])
    words = vocab.decode(first[0].flatten().tolist())
    assert words[0] == SEPARATOR
    sentences = " ".join(words).split(SEPARATOR)[1:-1]  # whole sentences of the window
    grammar = english_grammar()
    assert sentences and all(grammar.log_prob(s.split()) > -math.inf for s in sentences)
    again = next(grammar_batches(4, 16, seed=3))
    assert torch.equal(again[0], first[0])


def test_the_eval_set_floor_is_the_exact_nll_and_a_perfect_model_reaches_it():
    grammar = english_grammar()
    eval_set = grammar_eval_set(300, seed=11)
    assert eval_set.floor == pytest.approx(grammar.entropy_per_token(), rel=0.05)
    vocab = grammar_vocabulary()
    predicted = int((eval_set.targets != IGNORE_INDEX).sum())
    nll = 0.0
    for row in range(len(eval_set.inputs)):
        words = [
            w
            for w, t in zip(
                vocab.decode(eval_set.targets[row].clamp(min=0).tolist()),
                eval_set.targets[row].tolist(),
                strict=True,
            )
            if t != IGNORE_INDEX
        ]
        assert words[-1] == SEPARATOR and words[-2] == "."
        nll -= grammar.log_prob(words[:-1])
    assert eval_set.floor == pytest.approx(nll / predicted)  # fmt: skip


class Uniform(torch.nn.Module):
    def forward(self, ids):
        return torch.zeros(*ids.shape, 62)


def test_sentence_loss_of_a_uniform_model_is_log_vocab():
    eval_set = grammar_eval_set(50, seed=2)
    assert sentence_loss(Uniform(), eval_set) == pytest.approx(math.log(62))
    assert len(grammar_vocabulary()) == 62


def test_prose_characters():
    corpus = prose_characters()
    assert corpus.train.dtype == torch.long and corpus.train.ndim == 1
    assert len(corpus.train) > 200_000 and len(corpus.validation) > 20_000
    text = "".join(corpus.vocab.decode(corpus.train[:200].tolist()))
    assert text[0].isupper() or text[0].isalpha()
    assert corpus.vocab.stoi["<unk>"] == 0


def test_errors():
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        next(grammar_batches(0, 16, seed=0))
    with pytest.raises(ValueError, match="max_length must be an integer >= 2"):
        grammar_eval_set(10, seed=0, max_length=1)
