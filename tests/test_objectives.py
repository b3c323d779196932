import math

import pytest
import torch
import torch.nn.functional as F

from llmcourse.data import IGNORE_INDEX
from llmcourse.training import (
    apply_masking,
    corrupt_spans,
    fill_spans,
    mask_tokens,
    next_sentence_pairs,
    span_corruption,
    span_noise_mask,
)

VOCAB, MASK, PAD, CLS = 40, 1, 0, 2
SPECIALS = {PAD, MASK, CLS}


def within(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    """``count`` is within ``sigmas`` binomial standard deviations of ``n * p``."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@pytest.fixture(scope="module")
def masked():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (200, 400), generator=gen)
    inputs, labels = mask_tokens(ids, MASK, VOCAB, SPECIALS, generator=gen)
    return ids, inputs, labels


# ------------------------------------------------------------------- masked LM
def test_apply_masking_by_hand():
    ids = torch.tensor([10, 11, 12, 13, 14])
    selected = torch.tensor([True, True, True, False, True])
    action = torch.tensor([0.1, 0.85, 0.95, 0.1, 0.799])
    replacement = torch.tensor([20, 21, 22, 23, 24])
    inputs, labels = apply_masking(ids, selected, action, replacement, mask_id=1)
    assert inputs.tolist() == [1, 21, 12, 13, 1]
    assert labels.tolist() == [10, 11, 12, IGNORE_INDEX, 14]
    assert ids.tolist() == [10, 11, 12, 13, 14]  # not modified in place


def test_apply_masking_checks_shapes():
    ids = torch.tensor([1, 2])
    with pytest.raises(ValueError, match="action must have the shape"):
        apply_masking(ids, torch.tensor([True, False]), torch.rand(3), ids, 0)
    with pytest.raises(TypeError, match="selected must be a bool"):
        apply_masking(ids, torch.tensor([1, 0]), torch.rand(2), ids, 0)


def test_labels_are_ignore_index_exactly_where_unselected(masked):
    ids, inputs, labels = masked
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], ids[selected])
    # an unselected position keeps its token
    assert torch.equal(inputs[~selected], ids[~selected])


def test_specials_are_never_selected_nor_drawn(masked):
    ids, inputs, labels = masked
    special = torch.isin(ids, torch.tensor(sorted(SPECIALS)))
    assert special.sum() > 1000
    assert (labels[special] == IGNORE_INDEX).all()
    assert torch.equal(inputs[special], ids[special])
    selected = labels != IGNORE_INDEX
    changed = selected & (inputs != ids) & (inputs != MASK)
    assert not torch.isin(inputs[changed], torch.tensor(sorted(SPECIALS))).any()
    # every ordinary id shows up among the random replacements
    assert len(inputs[changed].unique()) == VOCAB - len(SPECIALS)


def test_fifteen_percent_and_80_10_10_statistically(masked):
    ids, inputs, labels = masked
    ordinary = ~torch.isin(ids, torch.tensor(sorted(SPECIALS)))
    selected = labels != IGNORE_INDEX
    n_ordinary, n_selected = int(ordinary.sum()), int(selected.sum())
    assert within(n_selected, n_ordinary, 0.15)
    masked_count = int((selected & (inputs == MASK)).sum())
    # a random replacement equals the original token with probability 1 / 37
    n_draws = VOCAB - len(SPECIALS)
    random_count = int((selected & (inputs != MASK) & (inputs != ids)).sum())
    kept_count = int((selected & (inputs == ids)).sum())
    assert within(masked_count, n_selected, 0.8)
    assert within(random_count, n_selected, 0.1 * (1 - 1 / n_draws))
    assert within(kept_count, n_selected, 0.1 + 0.1 / n_draws)
    assert masked_count + random_count + kept_count == n_selected


def test_mask_tokens_is_seeded_and_handles_p_extremes():
    ids = torch.randint(3, VOCAB, (4, 30), generator=torch.Generator().manual_seed(1))
    first = mask_tokens(ids, MASK, VOCAB, SPECIALS, generator=torch.Generator().manual_seed(5))
    second = mask_tokens(ids, MASK, VOCAB, SPECIALS, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    inputs, labels = mask_tokens(ids, MASK, VOCAB, SPECIALS, p=0.0)
    assert torch.equal(inputs, ids) and (labels == IGNORE_INDEX).all()
    _, labels = mask_tokens(ids, MASK, VOCAB, SPECIALS, p=1.0)
    assert torch.equal(labels, ids)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask_id": 5}, "mask_id 5 must be one of special_ids"),
        ({"p": 1.5}, "p must be in"),
        ({"vocab_size": 0}, "vocab_size must be"),
        ({"special_ids": {1, 99}}, "special_ids must lie in"),
    ],
)
def test_mask_tokens_errors(kwargs, message):
    args = {"mask_id": MASK, "vocab_size": VOCAB, "special_ids": SPECIALS} | kwargs
    with pytest.raises(ValueError, match=message):
        mask_tokens(torch.tensor([3, 4]), **args)


def test_mask_tokens_rejects_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match="ids must lie in"):
        mask_tokens(torch.tensor([3, VOCAB]), MASK, VOCAB, SPECIALS)
    with pytest.raises(ValueError, match="long tensor"):
        mask_tokens(torch.tensor([3.0]), MASK, VOCAB, SPECIALS)


def test_cross_entropy_ignore_index_matches_a_hand_computation(masked):
    _, _, labels = masked
    labels = labels[:3, :50]
    logits = torch.randn(*labels.shape, VOCAB, generator=torch.Generator().manual_seed(2))
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
    log_probs = logits.log_softmax(-1)
    terms = [
        -log_probs[i, t, labels[i, t]]
        for i in range(labels.shape[0])
        for t in range(labels.shape[1])
        if labels[i, t] != IGNORE_INDEX
    ]
    assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-6)


# ----------------------------------------------------------- next-sentence prediction
def test_next_sentence_pairs():
    documents = [[[d, s] for s in range(6)] for d in range(40)]  # sentence = [doc, index]
    pairs = next_sentence_pairs(documents, seed=3)
    assert len(pairs) == 40 * 5
    positives = 0
    for first, second, label in pairs:
        if label == 1:
            positives += 1
            assert second == [first[0], first[1] + 1]
        else:
            assert label == 0 and second[0] != first[0]
    assert within(positives, len(pairs), 0.5)
    assert next_sentence_pairs(documents, seed=3) == pairs


def test_next_sentence_pairs_errors():
    with pytest.raises(ValueError, match="at least two documents"):
        next_sentence_pairs([[[1], [2]]])
    with pytest.raises(ValueError, match="at least one sentence"):
        next_sentence_pairs([[[1], [2]], []])


# ----------------------------------------------------------------- span corruption
SENTINELS = list(range(100, 108))


def test_corrupt_spans_by_hand():
    ids = torch.tensor([1, 2, 3, 4, 5, 6])
    noise = torch.tensor([False, True, True, False, True, False])
    inputs, targets = corrupt_spans(ids, noise, SENTINELS)
    assert inputs.tolist() == [1, 100, 4, 101, 6]
    assert targets.tolist() == [100, 2, 3, 101, 5, 102]
    assert torch.equal(fill_spans(inputs, targets, SENTINELS), ids)


def test_corrupt_spans_needs_enough_sentinels():
    noise = torch.tensor([True, False, True, False, True, False])
    with pytest.raises(ValueError, match="3 spans need 4 sentinel ids, got 3"):
        corrupt_spans(torch.arange(6), noise, [100, 101, 102])


@pytest.mark.parametrize("length", [2, 7, 20, 64, 120])
def test_span_corruption_round_trips(length):
    gen = torch.Generator().manual_seed(length)
    for _ in range(20):
        ids = torch.randint(0, 50, (length,), generator=gen)
        inputs, targets = span_corruption(ids, SENTINELS, generator=gen)
        assert torch.equal(fill_spans(inputs, targets, SENTINELS), ids)
        # every token is either kept in the inputs or written in the targets
        n_sentinels = int(torch.isin(targets, torch.tensor(SENTINELS)).sum())
        assert len(inputs) - (n_sentinels - 1) + len(targets) - n_sentinels == length


@pytest.mark.parametrize(("length", "density", "mean"), [(100, 0.15, 3.0), (60, 0.3, 2.0)])
def test_noise_density_and_span_count_are_exact(length, density, mean):
    gen = torch.Generator().manual_seed(0)
    n_noise = round(length * density)
    for _ in range(50):
        mask = span_noise_mask(length, density, mean, gen)
        assert mask.shape == (length,) and mask.dtype == torch.bool
        assert int(mask.sum()) == n_noise
        starts = mask & ~torch.cat([torch.tensor([False]), mask[:-1]])
        assert int(starts.sum()) == round(n_noise / mean)
        assert not mask[0]  # the runs alternate, kept tokens first


def test_span_lengths_are_a_uniform_random_split():
    """9 noise tokens in 3 spans: the first span has length k with probability
    C(9 - k - 1, 1) / C(8, 2) = (8 - k) / 28, as for a uniform split into positive parts."""
    gen = torch.Generator().manual_seed(1)
    draws = 4000
    counts = torch.zeros(8, dtype=torch.long)
    for _ in range(draws):
        mask = span_noise_mask(60, 0.15, 3.0, gen)
        first = int(mask.long().argmax())
        counts[int(mask[first:].long().cumprod(0).sum())] += 1
    for k in range(1, 8):
        assert within(int(counts[k]), draws, (8 - k) / 28)


def test_span_noise_mask_errors():
    with pytest.raises(ValueError, match="length must be"):
        span_noise_mask(1)
    with pytest.raises(ValueError, match="noise_density must be"):
        span_noise_mask(10, noise_density=1.0)
    with pytest.raises(ValueError, match="mean_span_length must be"):
        span_noise_mask(10, mean_span_length=0.5)


def test_fill_spans_errors():
    with pytest.raises(ValueError, match="start with a sentinel"):
        fill_spans(torch.tensor([1, 100]), torch.tensor([2, 100]), SENTINELS)
    with pytest.raises(ValueError, match="sentinel 101 of the inputs"):
        fill_spans(torch.tensor([101]), torch.tensor([100, 2]), SENTINELS)
