"""Unit tests of llmcourse.modules.positional: the sinusoidal table and its rotation property,
rotary embeddings and their relative-position property, and the position modules."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.modules import (
    LearnedPositions,
    RotaryEmbedding,
    SinusoidalPositions,
    apply_rope,
    frequencies,
    sinusoidal_encoding,
    sinusoidal_shift,
)


def test_sinusoidal_encoding_by_hand():
    pe = sinusoidal_encoding(50, 6)
    assert pe.shape == (50, 6) and pe.dtype == torch.float32
    pos = 7
    expected = []
    for i in range(3):
        w = 1 / 10000 ** (2 * i / 6)
        expected += [math.sin(pos * w), math.cos(pos * w)]
    torch.testing.assert_close(pe[pos], torch.tensor(expected))
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1.0] * 3))  # sin 0, cos 0


def test_frequencies_fall_geometrically_from_one():
    w = frequencies(8, base=16.0)
    torch.testing.assert_close(w, torch.tensor([1, 1 / 2, 1 / 4, 1 / 8], dtype=torch.float64))


def test_positions_are_distinct_and_each_pair_lies_on_the_unit_circle():
    pe = sinusoidal_encoding(512, 32).double()
    pairs = pe.view(512, 16, 2)
    torch.testing.assert_close(pairs.pow(2).sum(-1), torch.ones(512, 16, dtype=torch.float64))
    distances = torch.cdist(pe, pe) + torch.eye(512)
    assert distances.min() > 0.1


@settings(max_examples=30, deadline=None)
@given(offset=st.integers(-40, 40), d_half=st.integers(1, 16), base=st.sampled_from([100.0, 1e4]))
def test_a_shift_is_a_rotation_independent_of_the_position(offset, d_half, base):
    d = 2 * d_half
    pe = sinusoidal_encoding(100, d, base).double()
    shift = sinusoidal_shift(offset, d, base)
    positions = torch.arange(max(0, -offset), min(100, 100 - offset))
    torch.testing.assert_close(pe[positions] @ shift.T, pe[positions + offset], atol=1e-6, rtol=0)
    torch.testing.assert_close(shift @ shift.T, torch.eye(d, dtype=torch.float64))  # orthogonal
    torch.testing.assert_close(torch.linalg.det(shift), torch.tensor(1.0, dtype=torch.float64))
    # block diagonal: nothing outside the 2x2 blocks
    blocks = torch.block_diag(*[torch.ones(2, 2)] * d_half).bool()
    assert (shift[~blocks] == 0).all()


def test_shift_blocks_by_hand():
    k, w = 3, 1.0  # the first pair turns at w_0 = 1
    block = sinusoidal_shift(k, 4)[:2, :2]
    expected = [[math.cos(k * w), math.sin(k * w)], [-math.sin(k * w), math.cos(k * w)]]
    torch.testing.assert_close(block, torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(sinusoidal_shift(0, 6), torch.eye(6, dtype=torch.float64))


def test_rope_rotates_pairs_by_position_times_frequency():
    x = torch.tensor([[1.0, 0.0, 0.0, 2.0]])  # one row, two pairs
    m = 2
    out = apply_rope(x, torch.tensor([m]), base=100.0)
    w0, w1 = 1.0, 100.0 ** (-2 / 4)
    expected = [math.cos(m * w0), math.sin(m * w0), -2 * math.sin(m * w1), 2 * math.cos(m * w1)]
    torch.testing.assert_close(out, torch.tensor([expected]))


def test_rope_is_the_identity_at_position_zero_and_keeps_norms():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 8, generator=g, dtype=torch.float64)
    out = apply_rope(x, torch.tensor([0, 1, 7, 100, 4096]))
    torch.testing.assert_close(out[..., 0, :], x[..., 0, :])
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
    assert out.dtype == x.dtype and out.shape == x.shape


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(0, 500),
    n=st.integers(0, 500),
    shift=st.integers(-200, 200),
    d_half=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
)
def test_rope_scores_depend_only_on_the_relative_position(m, n, shift, d_half, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 1, 2 * d_half, generator=g, dtype=torch.float64)
    if min(m, n) + shift < 0:
        shift = -min(m, n)

    def score(i, j):
        return (apply_rope(q, torch.tensor([i])) @ apply_rope(k, torch.tensor([j])).T).item()

    assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-9)


def test_rope_equals_a_complex_multiplication():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 10, generator=g, dtype=torch.float64)
    positions = torch.arange(6) * 3
    as_complex = torch.view_as_complex(x.view(6, 5, 2).contiguous())
    phases = torch.polar(
        torch.ones(6, 5, dtype=torch.float64), positions[:, None] * frequencies(10)
    )
    expected = torch.view_as_real(as_complex * phases).flatten(1)
    torch.testing.assert_close(apply_rope(x, positions), expected)


def test_rotary_embedding_module():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 7, 6, generator=g)
    rope = RotaryEmbedding(6)
    torch.testing.assert_close(rope(x), apply_rope(x, torch.arange(7)))
    positions = torch.tensor([5, 6, 7, 8, 9, 10, 11])
    torch.testing.assert_close(rope(x, positions), apply_rope(x, positions))
    assert list(rope.parameters()) == []
    with pytest.raises(ValueError, match=r"x must be \(\.\.\., length, 6\)"):
        rope(torch.zeros(3, 4))


def test_position_modules():
    torch.manual_seed(0)
    learned = LearnedPositions(10, 4)
    assert learned(3).shape == (3, 4) and learned(3).requires_grad
    assert [n for n, _ in learned.named_parameters()] == ["table"]
    fixed = SinusoidalPositions(10, 4)
    torch.testing.assert_close(fixed(10), sinusoidal_encoding(10, 4))
    assert list(fixed.parameters()) == [] and fixed.state_dict() == {}
    for module in (learned, fixed):
        with pytest.raises(ValueError, match=r"length must be an integer in \[1, 10\], got 11"):
            module(11)


def test_errors():
    with pytest.raises(ValueError, match="d_model must be even"):
        sinusoidal_encoding(4, 5)
    with pytest.raises(ValueError, match="n_positions must be an integer >= 1"):
        sinusoidal_encoding(0, 4)
    with pytest.raises(ValueError, match="base must be > 1"):
        frequencies(4, base=1.0)
    with pytest.raises(ValueError, match="offset must be an integer"):
        sinusoidal_shift(1.5, 4)
    with pytest.raises(ValueError, match="d_model must be even"):
        apply_rope(torch.zeros(3, 5), torch.arange(3))
    with pytest.raises(ValueError, match=r"positions must be a tensor of shape \(3,\)"):
        apply_rope(torch.zeros(3, 4), torch.arange(4))
    with pytest.raises(ValueError, match="floating-point"):
        apply_rope(torch.zeros(3, 4, dtype=torch.long), torch.arange(3))
    with pytest.raises(ValueError, match="d_model must be an integer >= 1"):
        LearnedPositions(4, 0)
