"""Unit tests for llmcourse.classic.word2vec: skip-gram pairs, both losses, noise, neighbours.

The losses are checked against the formulas computed from the model's own weights
(``F.cross_entropy`` on ``u . v`` logits, and the sigmoid formula in float64), the
pairs against examples worked out by hand and a brute-force count, the neighbours
against ``F.cosine_similarity``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmcourse.classic import (
    SkipGram,
    cosine_similarity_matrix,
    nearest,
    noise_distribution,
    sample_negatives,
    skipgram_pairs,
)
from llmcourse.training import train


def randomised(vocab_size=9, dim=4, seed=0) -> SkipGram:
    """A SkipGram model with random center *and* context vectors (the latter start at 0)."""
    torch.manual_seed(seed)
    model = SkipGram(vocab_size, dim)
    with torch.no_grad():
        model.center.weight.normal_()
        model.context.weight.normal_()
    return model


# ------------------------------------------------------------------ pairs


def test_skipgram_pairs_by_hand():
    centers, contexts = skipgram_pairs([[7, 8, 9]], window=1)
    assert list(zip(centers.tolist(), contexts.tolist(), strict=True)) == [
        (7, 8),
        (8, 7),
        (8, 9),
        (9, 8),
    ]
    centers, contexts = skipgram_pairs([[7, 8, 9], [5, 6]], window=2)
    assert list(zip(centers.tolist(), contexts.tolist(), strict=True)) == [
        (7, 8),
        (7, 9),
        (8, 7),
        (8, 9),
        (9, 7),
        (9, 8),
        (5, 6),  # no pair crosses the sentence boundary
        (6, 5),
    ]
    assert centers.dtype == contexts.dtype == torch.long


@pytest.mark.parametrize("window", [1, 2, 5])
def test_skipgram_pairs_count_and_brute_force(window):
    generator = torch.Generator().manual_seed(window)
    sentences = [torch.randint(20, (n,), generator=generator).tolist() for n in (0, 1, 3, 8, 12)]
    expected = [
        (s[t], s[u])
        for s in sentences
        for t in range(len(s))
        for u in range(len(s))
        if 0 < abs(u - t) <= window
    ]
    centers, contexts = skipgram_pairs(sentences, window)
    assert sorted(zip(centers.tolist(), contexts.tolist(), strict=True)) == sorted(expected)
    count = sum(
        min(t, window) + min(len(s) - 1 - t, window) for s in sentences for t in range(len(s))
    )
    assert len(centers) == count


def test_skipgram_pairs_of_nothing():
    centers, contexts = skipgram_pairs([[], [3]], window=2)
    assert centers.shape == contexts.shape == (0,) and centers.dtype == torch.long


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_skipgram_pairs_reject_bad_window(bad):
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        skipgram_pairs([[1, 2]], bad)


def test_skipgram_pairs_reject_strings():
    with pytest.raises(TypeError, match="list of lists of ids"):
        skipgram_pairs(["the cat"], 2)


# ------------------------------------------------------------------ noise


def test_noise_distribution_follows_counts_to_the_three_quarters():
    counts = [100, 10, 1, 0, 16]
    noise = noise_distribution(counts)
    assert noise.dtype == torch.float64 and noise.shape == (5,)
    assert noise.sum().item() == pytest.approx(1.0, abs=1e-12)
    weights = [c**0.75 for c in counts]
    assert noise.tolist() == pytest.approx([w / sum(weights) for w in weights], rel=1e-12)
    # 3/4 flattens the unigram distribution: rare words gain, frequent ones lose
    unigram = noise_distribution(counts, power=1.0)
    assert unigram.tolist() == pytest.approx([c / 127 for c in counts], rel=1e-12)
    assert noise[2] > unigram[2] and noise[0] < unigram[0]
    uniform = noise_distribution(counts, power=0.0)
    assert uniform.tolist() == pytest.approx([0.25, 0.25, 0.25, 0.0, 0.25])


@pytest.mark.parametrize(
    ("counts", "power", "message"),
    [
        ([], 0.75, "non-empty 1-D"),
        ([[1, 2]], 0.75, "non-empty 1-D"),
        ([1, -1], 0.75, ">= 0 with a positive total"),
        ([0, 0], 0.75, ">= 0 with a positive total"),
        ([1, 2], -0.5, "power must be >= 0"),
    ],
)
def test_noise_distribution_rejects_bad_input(counts, power, message):
    with pytest.raises(ValueError, match=message):
        noise_distribution(counts, power)


def test_sample_negatives_shape_range_and_frequencies():
    noise = noise_distribution([50, 0, 20, 30], power=1.0)
    generator = torch.Generator().manual_seed(0)
    draws = sample_negatives(noise, (400, 50), generator)
    assert draws.shape == (400, 50) and draws.dtype == torch.long
    frequencies = torch.bincount(draws.flatten(), minlength=4) / draws.numel()
    assert frequencies[1] == 0  # a word with zero count is never drawn
    # 20,000 draws: the standard error of each frequency is below 0.004
    torch.testing.assert_close(frequencies, noise.float(), atol=0.015, rtol=0)
    again = sample_negatives(noise, (400, 50), torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_sample_negatives_rejects_a_matrix():
    with pytest.raises(ValueError, match="1-D distribution"):
        sample_negatives(torch.ones(2, 2), (3,))


# ----------------------------------------------------------------- model


def test_initialisation_follows_word2vec():
    torch.manual_seed(0)
    model = SkipGram(50, 8)
    assert model.center.weight.shape == model.context.weight.shape == (50, 8)
    assert model.center.weight.abs().max() <= 0.5 / 8
    assert model.center.weight.std() > 0.01
    assert (model.context.weight == 0).all()


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_model_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 1"):
        SkipGram(bad, 4)
    with pytest.raises(ValueError, match="dim must be an integer >= 1"):
        SkipGram(4, bad)


def test_scores_are_dot_products():
    model = randomised()
    centers = torch.tensor([0, 3, 3])
    v, u = model.center.weight.detach(), model.context.weight.detach()
    expected = torch.stack([u @ v[c] for c in centers])
    with torch.no_grad():
        got = model.scores(centers)
    assert got.shape == (3, 9)
    torch.testing.assert_close(got, expected)


def test_softmax_loss_matches_cross_entropy_and_the_formula():
    model = randomised()
    centers, contexts = torch.tensor([0, 3, 5, 8]), torch.tensor([1, 1, 2, 8])
    v, u = model.center.weight.detach().double(), model.context.weight.detach().double()
    # p(o | c) = exp(u_o . v_c) / sum_w exp(u_w . v_c)
    by_hand = 0.0
    for c, o in zip(centers.tolist(), contexts.tolist(), strict=True):
        by_hand -= (u[o] @ v[c] - torch.logsumexp(u @ v[c], dim=0)).item()
    by_hand /= 4
    with torch.no_grad():
        got = model.softmax_loss(centers, contexts)
        reference = F.cross_entropy(v.float()[centers] @ u.float().T, contexts)
    assert got.ndim == 0
    assert got.item() == pytest.approx(by_hand, rel=1e-5)
    torch.testing.assert_close(got, reference)


def test_negative_sampling_loss_matches_the_formula():
    model = randomised()
    centers, contexts = torch.tensor([0, 3, 5]), torch.tensor([1, 4, 2])
    negatives = torch.tensor([[2, 7], [8, 8], [0, 5]])
    v, u = model.center.weight.detach().double(), model.context.weight.detach().double()
    by_hand = 0.0
    for c, o, ns in zip(centers.tolist(), contexts.tolist(), negatives.tolist(), strict=True):
        by_hand -= torch.log(torch.sigmoid(u[o] @ v[c])).item()
        for n in ns:
            by_hand -= torch.log(torch.sigmoid(-(u[n] @ v[c]))).item()
    with torch.no_grad():
        got = model.negative_sampling_loss(centers, contexts, negatives)
    assert got.ndim == 0
    assert got.item() == pytest.approx(by_hand / 3, rel=1e-5)


def test_negative_sampling_loss_at_initialisation_is_k_plus_one_log_two():
    # context vectors start at zero, so every sigmoid is 1/2
    model = SkipGram(10, 4)
    negatives = torch.zeros(6, 5, dtype=torch.long)
    loss = model.negative_sampling_loss(torch.arange(6), torch.arange(6), negatives)
    assert loss.item() == pytest.approx(6 * torch.log(torch.tensor(2.0)).item(), rel=1e-6)


def test_negative_sampling_loss_is_finite_for_large_scores():
    model = SkipGram(4, 2)
    with torch.no_grad():
        model.center.weight.fill_(30.0)
        model.context.weight.copy_(torch.tensor([[30.0, 30.0], [-30.0, -30.0]] * 2))
    loss = model.negative_sampling_loss(torch.tensor([0]), torch.tensor([1]), torch.tensor([[0]]))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(2 * 1800.0, rel=1e-6)


def test_gradients_touch_only_the_rows_used():
    model = randomised()
    centers, contexts, negatives = (
        torch.tensor([0, 1]),
        torch.tensor([2, 3]),
        torch.tensor([[4], [5]]),
    )
    model.negative_sampling_loss(centers, contexts, negatives).backward()
    center_rows = model.center.weight.grad.abs().sum(1) > 0
    context_rows = model.context.weight.grad.abs().sum(1) > 0
    assert center_rows.nonzero().flatten().tolist() == [0, 1]
    assert context_rows.nonzero().flatten().tolist() == [2, 3, 4, 5]
    model.zero_grad()
    model.softmax_loss(centers, contexts).backward()
    assert (model.context.weight.grad.abs().sum(1) > 0).all()  # the softmax touches every u


@pytest.mark.parametrize(
    ("centers", "contexts", "negatives", "message"),
    [
        ([0, 1], [2], [[3], [3]], "same length"),
        ([[0, 1]], [[2, 3]], [[3], [3]], "same length"),
        ([0, 1], [2, 3], [3, 3], r"shape \(batch, k\)"),
        ([0, 1], [2, 3], [[3]], r"shape \(batch, k\)"),
    ],
)
def test_losses_reject_mismatched_shapes(centers, contexts, negatives, message):
    model = SkipGram(9, 4)
    args = (torch.tensor(centers), torch.tensor(contexts))
    with pytest.raises(ValueError, match=message):
        model.negative_sampling_loss(*args, torch.tensor(negatives))
    if message == "same length":
        with pytest.raises(ValueError, match=message):
            model.softmax_loss(*args)


def toy_corpus(n_sentences: int, seed: int) -> list[list[int]]:
    """Words 0/1 are interchangeable (both follow 4 and precede 5), as are 2/3 (6 _ 7)."""
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randint(4, (n_sentences,), generator=generator).tolist()
    return [[4, w, 5] if w < 2 else [6, w, 7] for w in pick]


@pytest.mark.parametrize("objective", ["softmax", "negative sampling"])
def test_training_lowers_the_loss_and_groups_interchangeable_words(objective):
    sentences = toy_corpus(200, seed=0)
    centers, contexts = skipgram_pairs(sentences, window=1)
    counts = torch.bincount(torch.tensor([w for s in sentences for w in s]), minlength=8)
    noise = noise_distribution(counts)
    generator = torch.Generator().manual_seed(0)

    def batches():
        while True:
            index = torch.randint(len(centers), (32,), generator=generator)
            yield centers[index], contexts[index], sample_negatives(noise, (32, 3), generator)

    def loss_fn(model, batch):
        if objective == "softmax":
            return model.softmax_loss(batch[0], batch[1])
        return model.negative_sampling_loss(*batch)

    torch.manual_seed(0)
    model = SkipGram(8, 5)
    history = train(model, loss_fn, batches(), steps=300, lr=0.05, progress=False)
    first, last = sum(history.train_loss[:10]) / 10, sum(history.train_loss[-10:]) / 10
    assert last < 0.6 * first
    vectors = model.center.weight.detach()
    assert nearest(vectors, 0, k=1)[0] == [1]
    assert nearest(vectors, 2, k=1)[0] == [3]


# ------------------------------------------------------------- similarity


def test_cosine_similarity_matrix_matches_torch():
    vectors = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    expected = F.cosine_similarity(vectors[:, None, :], vectors[None, :, :], dim=-1)
    got = cosine_similarity_matrix(vectors)
    assert got.shape == (6, 6)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.diagonal(), torch.ones(6))


def test_cosine_similarity_ignores_length_and_zero_vectors_give_zero():
    vectors = torch.tensor([[1.0, 0.0], [5.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    got = cosine_similarity_matrix(vectors)
    assert got[0, 1].item() == pytest.approx(1.0) and got[0, 2].item() == 0.0
    assert (got[3] == 0).all()


def test_cosine_similarity_matrix_rejects_a_vector():
    with pytest.raises(ValueError, match=r"shape \(V, d\)"):
        cosine_similarity_matrix(torch.ones(3))


def test_nearest_excludes_the_query_and_sorts():
    vectors = torch.randn(30, 4, generator=torch.Generator().manual_seed(1))
    for query in (0, 17, 29):
        ids, sims = nearest(vectors, query, k=6)
        assert query not in ids and len(ids) == len(sims) == 6
        assert sims == sorted(sims, reverse=True)
        all_sims = F.cosine_similarity(vectors, vectors[query : query + 1], dim=1)
        all_sims[query] = -2
        assert ids == all_sims.topk(6).indices.tolist()
        assert sims == pytest.approx(all_sims.topk(6).values.tolist(), abs=1e-6)


def test_nearest_breaks_ties_by_smaller_id():
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 0.0], [-1.0, 0.0]])
    ids, sims = nearest(vectors, 2, k=4)
    assert ids == [0, 3, 1, 4] and sims == pytest.approx([1.0, 1.0, 0.0, -1.0])


@pytest.mark.parametrize(
    ("query", "k", "message"),
    [(5, 1, r"query must be an id in \[0, 5\)"), (-1, 1, "query"), (True, 1, "query"),
     (0, 0, "k must be an integer >= 1"), (0, 5, "k must be at most V - 1 = 4")],
)  # fmt: skip
def test_nearest_rejects_bad_arguments(query, k, message):
    with pytest.raises(ValueError, match=message):
        nearest(torch.randn(5, 2), query, k)
    with pytest.raises(ValueError, match=r"shape \(V, d\)"):
        nearest(torch.randn(5), 0, 1)
