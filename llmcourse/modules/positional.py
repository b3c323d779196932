"""Positions for attention, which by itself ignores word order.

Attention treats its input as a set: permute the tokens and the outputs are permuted
the same way. Three ways to tell a Transformer where each token is:

- **learned** absolute positions (:class:`LearnedPositions`): one trained vector per
  position ``0 .. n_positions - 1``, added to the token embeddings (GPT, BERT);
- **sinusoidal** absolute positions (Vaswani et al., 2017), a fixed table added in the
  same way (:func:`sinusoidal_encoding`, :class:`SinusoidalPositions`)::

      PE[pos, 2i] = sin(pos * w_i),  PE[pos, 2i + 1] = cos(pos * w_i),  w_i = base^(-2i/d).

  Each pair of coordinates is a point on a circle turning at its own speed ``w_i``, so
  moving ``k`` positions on is a rotation of every pair by the angle ``k w_i``, a linear
  map that does not depend on ``pos`` (:func:`sinusoidal_shift`);
- **rotary** position embeddings, RoPE (Su et al., 2021; :func:`apply_rope`,
  :class:`RotaryEmbedding`): instead of adding anything, rotate each pair of
  coordinates of a query or key at position ``m`` by the angle ``m w_i``. A dot product
  of a rotated query and a rotated key then depends on the positions only through
  their difference: attention sees relative positions.

Pairs are adjacent coordinates ``(2i, 2i + 1)`` in all three, as in both papers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llmcourse.checks import check_int, check_int_in


def _check_sizes(n_positions: int, d_model: int) -> None:
    check_int("n_positions", n_positions)
    check_int("d_model", d_model)
    if d_model % 2:
        raise ValueError(f"d_model must be even (coordinates come in pairs), got {d_model}")


def frequencies(d_model: int, base: float = 10000.0) -> Tensor:
    """The ``d_model / 2`` angular frequencies ``w_i = base^(-2i / d_model)``, from 1 down."""
    _check_sizes(1, d_model)
    if not base > 1:
        raise ValueError(f"base must be > 1, got {base!r}")
    return base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)


def sinusoidal_encoding(
    n_positions: int, d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """The sinusoidal position table ``(n_positions, d_model)`` of Vaswani et al. (2017).

    ``PE[pos, 2i] = sin(pos w_i)`` and ``PE[pos, 2i + 1] = cos(pos w_i)``, computed in
    float64 and returned as ``dtype``.
    """
    _check_sizes(n_positions, d_model)
    angles = torch.arange(n_positions, dtype=torch.float64)[:, None] * frequencies(d_model, base)
    pe = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (n, d/2, 2): the pairs
    return pe.flatten(1).to(dtype)


def sinusoidal_shift(offset: int, d_model: int, base: float = 10000.0) -> Tensor:
    """The ``(d_model, d_model)`` matrix ``A`` with ``PE[pos + offset] = A @ PE[pos]`` for all pos.

    ``A`` is block diagonal; its ``i``-th 2x2 block rotates the pair ``(sin, cos)`` by
    ``offset * w_i``::

        [ cos(k w_i)  sin(k w_i)]   [sin(pos w_i)]   [sin((pos + k) w_i)]
        [-sin(k w_i)  cos(k w_i)] @ [cos(pos w_i)] = [cos((pos + k) w_i)]

    Returned as float64.
    """
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise ValueError(f"offset must be an integer, got {offset!r}")
    angle = offset * frequencies(d_model, base)
    cos, sin = angle.cos(), angle.sin()
    blocks = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    return torch.block_diag(*blocks)


def rope_angles(positions: Tensor, d: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """``cos`` and ``sin`` of the angles ``m w_i``: ``positions (...)`` -> two
    ``(..., d / 2)`` float64 tensors."""
    angles = positions.double()[..., None] * frequencies(d, base).to(positions.device)
    return angles.cos(), angles.sin()


def rotate_pairs(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate every pair ``(x[..., 2i], x[..., 2i + 1])`` by the angle whose cosine and
    sine are ``cos[..., i]`` and ``sin[..., i]`` (broadcast against ``x``'s pairs)."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


def _check_rope_positions(x: Tensor, positions: object) -> None:
    """Positions are ``(length,)``, or ``(batch, length)`` for ``x: (batch, heads,
    length, d)``."""
    length = x.shape[-2]
    if isinstance(positions, Tensor) and positions.shape == (length,):
        return
    if isinstance(positions, Tensor) and x.ndim == 4 and positions.shape == (x.shape[0], length):
        return
    got = tuple(positions.shape) if isinstance(positions, Tensor) else type(positions).__name__
    per_sequence = f" or (batch, length) = ({x.shape[0]}, {length})" if x.ndim == 4 else ""
    raise ValueError(f"positions must be a tensor of shape ({length},){per_sequence}, got {got}")


def _per_row(values: Tensor, x: Tensor) -> Tensor:
    """Angles ``(length, d/2)`` or ``(batch, length, d/2)`` aligned with ``x: (..., length,
    d/2 pairs)``: a per-sequence table gets a heads axis."""
    return values[:, None] if values.ndim == 3 else values


def apply_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotate every pair ``(x[..., 2i], x[..., 2i + 1])`` at position ``m`` by the angle ``m w_i``.

    Seen as a complex number ``x_{2i} + j x_{2i+1}``, each pair is multiplied by
    ``exp(j m w_i)``. Then ``apply_rope(q, m) . apply_rope(k, n)`` depends on ``m`` and
    ``n`` only through ``m - n``.

    Args:
        x: ``(..., length, d)`` queries or keys, ``d`` even.
        positions: ``(length,)`` positions of the rows of ``x`` (integers or floats), or,
            for ``x: (batch, heads, length, d)``, ``(batch, length)``: each sequence's own.
        base: ``w_i = base^(-2i / d)``.

    Returns:
        A tensor of the shape and dtype of ``x``.
    """
    if not isinstance(x, Tensor) or x.ndim < 2 or not x.is_floating_point():
        raise ValueError("x must be a floating-point tensor (..., length, d)")
    _check_rope_positions(x, positions)
    cos, sin = rope_angles(positions, x.shape[-1], base)
    return rotate_pairs(x, _per_row(cos, x), _per_row(sin, x))


class RotaryEmbedding(nn.Module):
    """:func:`apply_rope` as a module without parameters.

    ``forward(x, positions=None, start=0)`` rotates the rows of ``x: (..., length, d)``
    by their positions: ``start .. start + length - 1``, or ``positions``. The cosines
    and sines of the first ``max_positions`` positions are computed once (in float64, as
    :func:`apply_rope` does, so both give the same numbers) and looked up afterwards.
    """

    cos: Tensor
    sin: Tensor

    def __init__(self, d: int, base: float = 10000.0, max_positions: int = 0) -> None:
        super().__init__()
        _check_sizes(1, d)
        check_int("max_positions", max_positions, minimum=0)
        frequencies(d, base)  # validates base
        self.d, self.base, self.max_positions = d, base, max_positions
        cos, sin = rope_angles(torch.arange(max_positions), d, base)
        self.register_buffer("cos", cos, persistent=False)  # (max_positions, d / 2)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: Tensor, positions: Tensor | None = None, start: int = 0) -> Tensor:
        if x.ndim < 2 or x.shape[-1] != self.d:
            raise ValueError(f"x must be (..., length, {self.d}), got {tuple(x.shape)}")
        length = x.shape[-2]
        if positions is None and start + length <= self.max_positions:
            cos, sin = self.cos[start : start + length], self.sin[start : start + length]
        else:
            if positions is None:
                positions = torch.arange(start, start + length, device=x.device)
            _check_rope_positions(x, positions)
            cos, sin = rope_angles(positions, self.d, self.base)
        return rotate_pairs(x, _per_row(cos, x), _per_row(sin, x))

    def extra_repr(self) -> str:
        return f"d={self.d}, base={self.base:g}"


class _AbsolutePositions(nn.Module):
    """Shared ``forward``: the first ``length`` rows of a ``(n_positions, d_model)`` table."""

    table: Tensor

    def forward(self, length: int) -> Tensor:
        """``length`` -> ``(length, d_model)``, the vectors of positions ``0 .. length - 1``."""
        n_positions = self.table.shape[0]
        check_int_in("length", length, 1, n_positions)
        return self.table[:length]


class LearnedPositions(_AbsolutePositions):
    """A trained vector for every position ``0 .. n_positions - 1`` (initialised N(0, 0.02²))."""

    def __init__(self, n_positions: int, d_model: int) -> None:
        super().__init__()
        check_int("n_positions", n_positions)
        check_int("d_model", d_model)
        self.table = nn.Parameter(0.02 * torch.randn(n_positions, d_model))


class SinusoidalPositions(_AbsolutePositions):
    """The fixed table :func:`sinusoidal_encoding` (a buffer, not saved in the state dict)."""

    def __init__(self, n_positions: int, d_model: int, base: float = 10000.0) -> None:
        super().__init__()
        self.register_buffer(
            "table", sinusoidal_encoding(n_positions, d_model, base), persistent=False
        )
