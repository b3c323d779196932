"""Subsampling of frequent words (llmcourse.classic.word2vec): keep probabilities by hand,
the two published forms, and the random dropping they drive."""

from __future__ import annotations

import math

import pytest
import torch

from llmcourse.classic import SUBSAMPLING_FORMS, keep_probabilities, subsample

COUNTS = torch.tensor([0, 500, 100, 10, 1])  # total 611


def test_keep_probabilities_by_hand():
    t = 0.01
    f = COUNTS.double() / 611
    paper = keep_probabilities(COUNTS, t, form="paper")
    code = keep_probabilities(COUNTS, t, form="code")
    for i in (1, 2):
        assert math.isclose(paper[i].item(), math.sqrt(t / f[i].item()))
        assert math.isclose(code[i].item(), math.sqrt(t / f[i].item()) + t / f[i].item())
        # word2vec.c writes it as (sqrt(f / t) + 1) * t / f
        assert math.isclose(code[i].item(), (math.sqrt(f[i].item() / t) + 1) * t / f[i].item())
    assert paper[3] < 1 and code[3] == 1  # f = 0.0164: the code's form keeps it all
    assert paper[4] == code[4] == 1  # rarer than t: never dropped
    assert paper[0] == code[0] == 1  # never seen
    assert (code >= paper).all()


def test_keep_probability_falls_with_frequency():
    keep = keep_probabilities(torch.arange(1, 200), 1e-3)
    assert (keep[1:] <= keep[:-1]).all()


def test_subsample_keeps_the_expected_fraction():
    keep = torch.tensor([1.0, 0.25, 0.0])
    sentences = [[0, 1, 2, 1] * 50] * 100  # 10,000 occurrences of 1, 5,000 each of 0 and 2
    out = subsample(sentences, keep, torch.Generator().manual_seed(0))
    kept = torch.bincount(torch.tensor([i for s in out for i in s]), minlength=3)
    assert kept[0] == 5_000 and kept[2] == 0
    assert abs(kept[1].item() / 10_000 - 0.25) < 0.02  # ~4.6 standard deviations
    # order is preserved: what is left of a sentence is a subsequence of it
    assert all(s == [i for i in s if i != 2] for s in out)


def test_subsample_is_seeded_and_keeps_sentence_boundaries():
    keep = torch.tensor([0.5, 0.5, 1.0])
    sentences = [[0, 1, 2], [], [2, 2], [1, 0, 1, 0]]
    a = subsample(sentences, keep, torch.Generator().manual_seed(3))
    b = subsample(sentences, keep, torch.Generator().manual_seed(3))
    assert a == b and len(a) == 4 and a[1] == [] and a[2] == [2, 2]


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="form"):
        keep_probabilities(COUNTS, 1e-3, form="gensim")
    with pytest.raises(ValueError, match="threshold"):
        keep_probabilities(COUNTS, 0.0)
    with pytest.raises(ValueError, match="counts"):
        keep_probabilities(torch.tensor([-1, 3]))
    with pytest.raises(ValueError, match="probabilities"):
        subsample([[0]], torch.tensor([1.5]))
    with pytest.raises(ValueError, match="word ids"):
        subsample([[0, 3]], torch.tensor([1.0, 1.0]))
    with pytest.raises(TypeError):
        subsample(["the cat"], torch.tensor([1.0]))
    assert SUBSAMPLING_FORMS == ("paper", "code")
