"""Sparse attention masks against masks built by hand, and their properties."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.modules import (
    bigbird_mask,
    dilated_mask,
    global_mask,
    longformer_mask,
    random_mask,
    reachable,
    sliding_window_mask,
)


def by_hand(n, allowed):
    """The (n, n) bool mask with True where allowed(i, j), written as a double loop."""
    return torch.tensor([[bool(allowed(i, j)) for j in range(n)] for i in range(n)])


def test_sliding_window_small_example():
    expected = torch.tensor(
        [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1]]
    ).bool()
    assert torch.equal(sliding_window_mask(5, 3), expected)


@pytest.mark.parametrize("n", [1, 2, 7, 12])
@pytest.mark.parametrize("window", [1, 2, 3, 5, 20])
def test_sliding_window_matches_hand_built(n, window):
    causal = by_hand(n, lambda i, j: 0 <= i - j < window)
    both = by_hand(n, lambda i, j: abs(i - j) < window)
    assert torch.equal(sliding_window_mask(n, window), causal)
    assert torch.equal(sliding_window_mask(n, window, causal=False), both)


@pytest.mark.parametrize("window", [1, 2, 4])
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_dilated_matches_hand_built(window, dilation):
    n = 13
    offsets = {dilation * m for m in range(window)}
    causal = by_hand(n, lambda i, j: i - j in offsets)
    both = by_hand(n, lambda i, j: abs(i - j) in offsets)
    assert torch.equal(dilated_mask(n, window, dilation), causal)
    assert torch.equal(dilated_mask(n, window, dilation, causal=False), both)


def test_dilation_one_is_the_sliding_window():
    assert torch.equal(dilated_mask(9, 4, 1), sliding_window_mask(9, 4))
    assert torch.equal(dilated_mask(9, 4, 1, causal=False), sliding_window_mask(9, 4, False))


def test_sliding_window_as_wide_as_the_sequence_is_full_attention():
    assert torch.equal(sliding_window_mask(6, 6), torch.ones(6, 6, dtype=torch.bool).tril())
    assert torch.equal(sliding_window_mask(6, 6, causal=False), torch.ones(6, 6, dtype=torch.bool))


@pytest.mark.parametrize("causal", [True, False])
def test_global_tokens_matches_hand_built(causal):
    n, g = 8, {0, 5}
    expected = by_hand(n, lambda i, j: (i in g or j in g) and (not causal or j <= i))
    assert torch.equal(global_mask(n, [0, 5], causal), expected)


def test_longformer_is_window_or_global():
    n, window, g = 10, 2, {0, 1}
    expected = by_hand(n, lambda i, j: j <= i and (i - j < window or i in g or j in g))
    assert torch.equal(longformer_mask(n, window, [0, 1]), expected)


def test_random_mask_counts_and_causality():
    n = 12
    for causal in (True, False):
        mask = random_mask(n, 3, causal, torch.Generator().manual_seed(0))
        counts = mask.sum(dim=1)
        if causal:
            assert not mask.triu(1).any()
            assert counts.tolist() == [min(3, i + 1) for i in range(n)]
        else:
            assert (counts == 3).all()


def test_random_mask_is_repeatable_with_a_generator():
    a = random_mask(20, 4, generator=torch.Generator().manual_seed(5))
    b = random_mask(20, 4, generator=torch.Generator().manual_seed(5))
    c = random_mask(20, 4, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_bigbird_contains_its_parts_and_is_causal():
    g = torch.Generator().manual_seed(1)
    mask = bigbird_mask(16, 3, [0], 2, generator=g)
    assert not mask.triu(1).any()
    assert (mask & longformer_mask(16, 3, [0])).equal(longformer_mask(16, 3, [0]))
    assert mask.sum() > longformer_mask(16, 3, [0]).sum()


@pytest.mark.parametrize("window", [2, 3, 5])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_receptive_field_of_stacked_causal_windows(window, layers):
    n = 24
    reach = reachable(sliding_window_mask(n, window), layers)
    span = layers * (window - 1) + 1  # each layer looks window - 1 further back
    assert torch.equal(reach, sliding_window_mask(n, span))


def test_global_token_connects_everything_in_two_layers():
    n = 12
    mask = longformer_mask(n, 1, [0], causal=False)  # only the diagonal and token 0
    assert not reachable(mask, 1).all()
    assert reachable(mask, 2).all()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 20),
    window=st.integers(1, 8),
    dilation=st.integers(1, 4),
    causal=st.booleans(),
)
def test_mask_properties(n, window, dilation, causal):
    mask = dilated_mask(n, window, dilation, causal)
    assert mask.shape == (n, n) and mask.dtype == torch.bool
    assert mask.diagonal().all(), "every query sees itself"
    if causal:
        assert not mask.triu(1).any()
        assert (mask.sum(dim=1) <= window).all()
    else:
        assert torch.equal(mask, mask.T)
        assert (mask.sum(dim=1) <= 2 * window - 1).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sliding_window_mask(0, 2), "n must be an integer >= 1, got 0"),
        (lambda: sliding_window_mask(4, 0), "window must be an integer >= 1, got 0"),
        (lambda: dilated_mask(4, 2, 0), "dilation must be an integer >= 1, got 0"),
        (lambda: dilated_mask(4, 2.0, 1), "window must be an integer >= 1, got 2.0"),
        (lambda: global_mask(4, [4]), r"global_tokens must be integers in \[0, 4\), got 4"),
        (lambda: random_mask(4, 0), "n_random must be an integer >= 1, got 0"),
        (lambda: reachable(torch.ones(2, 3, dtype=torch.bool), 1), "square bool matrix"),
        (lambda: reachable(torch.ones(3, 3), 1), "square bool matrix"),
        (lambda: reachable(torch.ones(3, 3, dtype=torch.bool), 0), "n_layers must be"),
    ],
)
def test_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()
