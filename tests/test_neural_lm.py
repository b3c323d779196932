"""Unit tests for llmcourse.classic.neural_lm: the fixed-window neural language model.

The forward pass is checked against a computation written out by hand from the
model's own weights (one-hot vectors times the embedding matrix, then the two affine
maps), the parameter formula against ``numel``, the windows against examples worked
out by hand, and the evaluation conventions against ``llmcourse.classic.ngram``: a window-1
model whose weights encode a bigram model scores held-out text exactly as the bigram
model does.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmcourse.classic import (
    FixedWindowLM,
    NGramLM,
    cross_entropy,
    parameter_count,
    perplexity,
    windows,
)
from llmcourse.data import english_grammar
from llmcourse.text import BOS, EOS, Vocab
from llmcourse.training import train


def random_model(vocab_size=11, window=3, embed_dim=4, hidden_dim=5, seed=0) -> FixedWindowLM:
    torch.manual_seed(seed)
    return FixedWindowLM(vocab_size, window, embed_dim, hidden_dim)


# ------------------------------------------------------------ parameters


@pytest.mark.parametrize(
    ("vocab_size", "window", "embed_dim", "hidden_dim"),
    [(10, 3, 4, 5), (1, 1, 1, 1), (63, 4, 32, 64), (1802, 3, 32, 64)],
)
def test_parameter_count_matches_numel(vocab_size, window, embed_dim, hidden_dim):
    model = FixedWindowLM(vocab_size, window, embed_dim, hidden_dim)
    numel = sum(p.numel() for p in model.parameters())
    assert parameter_count(vocab_size, window, embed_dim, hidden_dim) == numel


def test_parameter_count_by_hand():
    # E: 10*4 = 40, W: 5*(3*4) = 60, b1: 5, U: 10*5 = 50, b2: 10
    assert parameter_count(10, 3, 4, 5) == 40 + 60 + 5 + 50 + 10


def test_parameter_shapes():
    model = random_model(vocab_size=11, window=3, embed_dim=4, hidden_dim=5)
    assert model.embedding.weight.shape == (11, 4)
    assert model.hidden.weight.shape == (5, 12) and model.hidden.bias.shape == (5,)
    assert model.output.weight.shape == (11, 5) and model.output.bias.shape == (11,)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "3", None])
@pytest.mark.parametrize("name", ["vocab_size", "window", "embed_dim", "hidden_dim"])
def test_constructor_and_formula_reject_bad_sizes(name, bad):
    sizes = dict(vocab_size=10, window=3, embed_dim=4, hidden_dim=5)
    sizes[name] = bad
    with pytest.raises(ValueError, match=f"{name} must be an integer >= 1"):
        FixedWindowLM(**sizes)
    with pytest.raises(ValueError, match=f"{name} must be an integer >= 1"):
        parameter_count(**sizes)


# --------------------------------------------------------------- forward


def test_forward_matches_hand_computation():
    model = random_model(vocab_size=11, window=3, embed_dim=4, hidden_dim=5)
    generator = torch.Generator().manual_seed(1)
    context = torch.randint(11, (7, 3), generator=generator)
    E = model.embedding.weight.detach()
    W, b1 = model.hidden.weight.detach(), model.hidden.bias.detach()
    U, b2 = model.output.weight.detach(), model.output.bias.detach()
    # One-hot rows times E select the embeddings; concatenate them position by position.
    one_hot = F.one_hot(context, 11).float()  # (7, 3, 11)
    e = torch.cat([one_hot[:, i] @ E for i in range(3)], dim=1)  # (7, 12)
    h = torch.tanh(e @ W.T + b1)
    expected = h @ U.T + b2
    with torch.no_grad():
        got = model(context)
    assert got.shape == (7, 11)
    torch.testing.assert_close(got, expected)


def test_forward_concatenates_oldest_word_first():
    # Swapping the two context words changes the prediction (the positions have
    # different weights), unless the words are equal.
    model = random_model(window=2)
    with torch.no_grad():
        ab, ba = model(torch.tensor([[1, 2]])), model(torch.tensor([[2, 1]]))
        manual = torch.tanh(
            model.hidden.weight[:, :4] @ model.embedding.weight[1]
            + model.hidden.weight[:, 4:] @ model.embedding.weight[2]
            + model.hidden.bias
        )
    assert not torch.allclose(ab, ba)
    torch.testing.assert_close(ab[0], model.output(manual))


def test_loss_is_cross_entropy_of_softmax():
    model = random_model()
    context, target = torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.tensor([7, 0])
    with torch.no_grad():
        logits = model(context)
    probs = torch.softmax(logits.double(), dim=-1)
    by_hand = -(probs[0, 7].log() + probs[1, 0].log()) / 2
    assert F.cross_entropy(logits, target).item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_gradients_reach_every_parameter():
    model = random_model()
    context = torch.randint(6, (8, 3), generator=torch.Generator().manual_seed(0))  # ids 0..5
    F.cross_entropy(model(context), torch.arange(8)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # only the rows of words that occur in some context get an embedding gradient
    unused = sorted(set(range(11)) - set(context.flatten().tolist()))
    assert (model.embedding.weight.grad[context.flatten()].abs().sum(1) > 0).all()
    assert (model.embedding.weight.grad[unused] == 0).all()


@pytest.mark.parametrize("shape", [(4,), (4, 2), (4, 4), (2, 4, 3)])
def test_forward_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"context must have shape \(batch, 3\)"):
        random_model()(torch.zeros(shape, dtype=torch.long))


def test_forward_rejects_float_contexts():
    with pytest.raises(TypeError, match="torch.long"):
        random_model()(torch.zeros(2, 3))


# --------------------------------------------------------------- windows


def test_windows_by_hand():
    contexts, targets = windows([[5, 6], [7]], window=2, bos_id=1, eos_id=2)
    # <s> <s> 5 6 </s>  and  <s> <s> 7 </s>
    assert contexts.tolist() == [[1, 1], [1, 5], [5, 6], [1, 1], [1, 7]]
    assert targets.tolist() == [5, 6, 2, 7, 2]
    assert contexts.dtype == targets.dtype == torch.long


def test_windows_window_longer_than_sentence_and_empty_sentence():
    contexts, targets = windows([[9], []], window=3, bos_id=0, eos_id=4)
    assert contexts.tolist() == [[0, 0, 0], [0, 0, 9], [0, 0, 0]]
    assert targets.tolist() == [9, 4, 4]


def test_windows_empty_corpus_has_the_right_shapes():
    contexts, targets = windows([], window=4, bos_id=0, eos_id=1)
    assert contexts.shape == (0, 4) and targets.shape == (0,)
    assert contexts.dtype == targets.dtype == torch.long


def test_windows_counts_every_word_and_end_like_the_ngram_model():
    sentences = [s.tokens for s in english_grammar().generate(50, seed=3)]
    vocab = Vocab(w for s in sentences for w in s)
    ids = [vocab.encode(s) for s in sentences]
    contexts, targets = windows(ids, 3, vocab.stoi[BOS], vocab.stoi[EOS])
    assert len(targets) == sum(len(s) + 1 for s in sentences)
    # the contexts are the n-gram model's histories, the targets its predicted words
    lm = NGramLM(4, smoothing="mle").fit(sentences)
    counted = sum(c for followers in lm.counts[4].values() for c in followers.values())
    assert counted == len(targets)
    for context, target in zip(contexts[:40].tolist(), targets[:40].tolist(), strict=True):
        history = tuple(vocab.decode(context))
        assert lm.counts[4][history][vocab.itos[target]] > 0


def test_windows_accept_tensors_per_sentence():
    contexts, targets = windows([torch.tensor([3, 4])], window=1, bos_id=0, eos_id=1)
    assert contexts.tolist() == [[0], [3], [4]] and targets.tolist() == [3, 4, 1]


@pytest.mark.parametrize("bad", [0, -1, 2.0])
def test_windows_reject_bad_window(bad):
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        windows([[1, 2]], bad, 0, 1)


def test_windows_reject_strings():
    with pytest.raises(TypeError, match="list of lists of ids"):
        windows(["the cat"], 2, 0, 1)
    with pytest.raises(TypeError, match="list of lists of ids"):
        windows(torch.zeros(2, 3, dtype=torch.long), 2, 0, 1)


# ------------------------------------------------------------ evaluation


def test_cross_entropy_is_the_mean_token_loss():
    model = random_model(vocab_size=11, window=2)
    sentences = [[3, 4, 5], [6], [7, 8]]
    contexts, targets = windows(sentences, 2, 1, 2)
    with torch.no_grad():
        expected = F.cross_entropy(model(contexts), targets).item()
    # batch_size=2 splits the 9 examples unevenly: the sum must not depend on it
    for batch_size in (1, 2, 4096):
        got = cross_entropy(model, sentences, 1, 2, batch_size=batch_size)
        assert got == pytest.approx(expected, rel=1e-6)
    assert perplexity(model, sentences, 1, 2) == pytest.approx(math.exp(expected), rel=1e-6)


def test_uniform_model_has_perplexity_vocab_size():
    model = random_model(vocab_size=13)
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.zero_()
    assert perplexity(model, [[1, 2, 3], [4]], 0, 5) == pytest.approx(13.0, rel=1e-6)


def test_window_one_model_reproduces_a_bigram_model():
    """A window-1 model with one-hot embeddings and U = log P / tanh(1) *is* a bigram model.

    Both models must then give the same held-out cross-entropy, which checks that
    the padding, the ``</s>`` targets, the ``<unk>`` mapping and the token count are
    the same as in ``llmcourse.classic.ngram``.
    """
    grammar = english_grammar()
    train_sentences = [s.tokens for s in grammar.generate(300, seed=1)]
    test_sentences = [s.tokens for s in grammar.generate(50, seed=2)] + [["the", "zebra", "."]]
    bigram = NGramLM(2, smoothing="add_k", k=0.5).fit(train_sentences, min_count=2)
    vocab = Vocab((w for s in train_sentences for w in s), min_count=2)
    assert set(vocab.itos) == set(bigram.vocab.itos) | {BOS}
    v = len(vocab)
    model = FixedWindowLM(v, window=1, embed_dim=v, hidden_dim=v).double()
    log_p = torch.full((v, v), -1e4, dtype=torch.float64)  # log_p[next, previous]; <s> never
    for prev in range(v):
        if vocab.itos[prev] == EOS:
            continue  # nothing follows </s>
        for word, p in bigram.distribution([vocab.itos[prev]]).items():
            log_p[vocab.stoi[word], prev] = math.log(p)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(v))
        model.hidden.weight.copy_(torch.eye(v))
        model.hidden.bias.zero_()
        model.output.weight.copy_(log_p / math.tanh(1.0))
        model.output.bias.zero_()
    ids = [vocab.encode(s) for s in test_sentences]
    got = cross_entropy(model, ids, vocab.stoi[BOS], vocab.stoi[EOS])
    assert got == pytest.approx(bigram.cross_entropy(test_sentences), rel=1e-9)


def test_cross_entropy_rejects_an_empty_corpus():
    with pytest.raises(ValueError, match="empty corpus"):
        cross_entropy(random_model(), [], 0, 1)


def test_training_beats_the_unigram_model():
    grammar = english_grammar()
    train_tokens = [s.tokens for s in grammar.generate(500, seed=1)]
    test_tokens = [s.tokens for s in grammar.generate(100, seed=2)]
    vocab = Vocab(w for s in train_tokens for w in s)
    bos, eos = vocab.stoi[BOS], vocab.stoi[EOS]
    train_ids, test_ids = ([vocab.encode(s) for s in c] for c in (train_tokens, test_tokens))
    contexts, targets = windows(train_ids, 2, bos, eos)
    generator = torch.Generator().manual_seed(0)

    def batches():
        while True:
            index = torch.randint(len(targets), (64,), generator=generator)
            yield contexts[index], targets[index]

    model = random_model(vocab_size=len(vocab), window=2, embed_dim=8, hidden_dim=16)
    before = cross_entropy(model, test_ids, bos, eos)
    history = train(
        model,
        lambda m, b: F.cross_entropy(m(b[0]), b[1]),
        batches(),
        steps=300,
        lr=1e-2,
        eval_fn=lambda m: cross_entropy(m, test_ids, bos, eos),
        progress=False,
    )
    assert before == pytest.approx(math.log(len(vocab)), abs=0.3)  # near uniform at first
    # a unigram model knows only word frequencies; two words of context must beat it
    unigram = NGramLM(1, smoothing="add_k", k=0.01).fit(train_tokens)
    assert history.eval_loss[-1] < unigram.cross_entropy(test_tokens) - 0.5
