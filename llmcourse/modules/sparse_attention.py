"""Sparse attention patterns: which keys each query may attend to, and a banded attention.

Full self-attention lets every query ``i`` score every key ``j``: an ``n x n``
*interaction matrix* whose cost grows with ``n**2``. Sparse attention keeps only some
of the pairs. Each pattern below is a boolean mask of shape ``(n, n)``, True where query
``i`` may attend to key ``j``, the convention of ``llmcourse.modules.attention`` and of
``torch.nn.functional.scaled_dot_product_attention(attn_mask=...)``. With
``causal=True`` (a decoder), no query sees a later key.

- :func:`sliding_window_mask`: each query sees the keys at distance less than
  ``window``, a local, convolution-like band (Child et al., 2019; Beltagy et al., 2020).
- :func:`dilated_mask`: the same number of keys, spaced ``dilation`` apart, so that the
  band reaches further with no more pairs.
- :func:`global_mask`: a few positions attend to every key and every query attends to
  them (the global tokens of Longformer and BigBird).
- :func:`random_mask`: a few random keys per query (BigBird's random attention).

Masks combine with ``|``: :func:`longformer_mask` is a sliding window plus global
tokens, and :func:`bigbird_mask` adds random keys. :func:`reachable` shows why a local
window is enough in a deep model: after ``L`` layers, information travels ``L`` times
further than the window.

A mask alone does not save anything: dense masked attention still computes all ``n**2``
scores. :func:`sliding_window_attention` computes only the ``n x window`` scores of the
band, and equals dense attention with the corresponding mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from llmcourse.checks import check_int


def _distances(n: int) -> torch.Tensor:
    """``(n, n)`` long: ``i - j``, the distance from query ``i`` back to key ``j``."""
    check_int("n", n)
    positions = torch.arange(n)
    return positions.unsqueeze(1) - positions.unsqueeze(0)


def sliding_window_mask(n: int, window: int, causal: bool = True) -> torch.Tensor:
    """Local attention: query ``i`` sees the keys at distance less than ``window``.

    Causal: ``i - window < j <= i``, the ``window`` most recent keys (itself included).
    Not causal: ``|i - j| < window``, up to ``2 * window - 1`` keys centred on ``i``.

    Returns:
        ``(n, n)`` bool, True where query ``i`` may attend to key ``j``.

    Example:
        >>> sliding_window_mask(4, 2).int().tolist()
        [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    return dilated_mask(n, window, 1, causal)


def dilated_mask(n: int, window: int, dilation: int, causal: bool = True) -> torch.Tensor:
    """A sliding window with gaps: ``window`` keys spaced ``dilation`` apart.

    Causal: query ``i`` sees keys ``i, i - d, i - 2d, ..., i - (window - 1) d`` (those
    that exist). Not causal: the same distances on both sides. ``dilation=1`` is
    :func:`sliding_window_mask`.

    Returns:
        ``(n, n)`` bool, True where query ``i`` may attend to key ``j``.

    Example:
        >>> dilated_mask(5, 2, 2).int().tolist()
        [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [1, 0, 1, 0, 0], [0, 1, 0, 1, 0], [0, 0, 1, 0, 1]]
    """
    check_int("window", window)
    check_int("dilation", dilation)
    distance = _distances(n)
    if not causal:
        distance = distance.abs()
    return (distance >= 0) & (distance < window * dilation) & (distance % dilation == 0)


def _positions(n: int, positions: Iterable[int], name: str) -> list[int]:
    positions = list(positions)
    for p in positions:
        if not isinstance(p, int) or isinstance(p, bool) or not 0 <= p < n:
            raise ValueError(f"{name} must be integers in [0, {n}), got {p!r}")
    return positions


def global_mask(n: int, global_tokens: Iterable[int], causal: bool = True) -> torch.Tensor:
    """Global tokens: each listed position attends to every key, and every query to it.

    Causal: the rows and columns of the global positions, restricted to ``j <= i``
    (a global token sees all earlier keys, and all later queries see it).

    Args:
        n: sequence length.
        global_tokens: positions in ``[0, n)``, e.g. ``[0]`` for a leading ``<cls>``.
        causal: restrict to ``j <= i``.

    Returns:
        ``(n, n)`` bool. Alone it leaves the other pairs (even the diagonal) False:
        combine it with a local pattern, ``sliding_window_mask(...) | global_mask(...)``.
    """
    check_int("n", n)
    rows = torch.zeros(n, dtype=torch.bool)
    rows[_positions(n, global_tokens, "global_tokens")] = True
    mask = rows.unsqueeze(1) | rows.unsqueeze(0)
    return mask & (_distances(n) >= 0) if causal else mask


def random_mask(
    n: int, n_random: int, causal: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random attention: each query sees ``n_random`` keys drawn without replacement.

    Causal: the keys are drawn among ``0..i`` (query ``i`` gets ``min(n_random, i + 1)``).

    Returns:
        ``(n, n)`` bool with ``n_random`` True per row (fewer in the first causal rows).
    """
    check_int("n", n)
    check_int("n_random", n_random)
    scores = torch.rand(n, n, generator=generator)
    if causal:
        scores = scores.masked_fill(_distances(n) < 0, -1.0)  # never among the top keys
    top = scores.topk(min(n_random, n), dim=-1).indices
    mask = torch.zeros(n, n, dtype=torch.bool).scatter_(1, top, True)
    return mask & (_distances(n) >= 0) if causal else mask


def longformer_mask(
    n: int, window: int, global_tokens: Iterable[int], causal: bool = True
) -> torch.Tensor:
    """A sliding window plus global tokens (Beltagy et al., 2020); ``(n, n)`` bool."""
    return sliding_window_mask(n, window, causal) | global_mask(n, global_tokens, causal)


def bigbird_mask(
    n: int,
    window: int,
    global_tokens: Iterable[int],
    n_random: int,
    causal: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Window, global and random keys together (Zaheer et al., 2020); ``(n, n)`` bool."""
    return longformer_mask(n, window, global_tokens, causal) | random_mask(
        n, n_random, causal, generator
    )


def reachable(mask: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Which keys can influence which queries after ``n_layers`` layers of this pattern.

    Through the residual stream a position always keeps its own information, so one
    layer connects ``i`` to ``j`` when ``mask[i, j]`` or ``i == j``, and ``L`` layers
    compose that relation ``L`` times (a boolean matrix power).

    Args:
        mask: ``(n, n)`` bool attention pattern.
        n_layers: number of stacked attention layers, >= 1.

    Returns:
        ``(n, n)`` bool, True where key ``j`` can reach query ``i``.
    """
    if mask.dtype != torch.bool or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"mask must be a square bool matrix, got {mask.dtype} {tuple(mask.shape)}")
    check_int("n_layers", n_layers)
    step = (mask | torch.eye(mask.shape[0], dtype=torch.bool)).float()
    reach = step
    for _ in range(n_layers - 1):
        reach = ((reach @ step) > 0).float()
    return reach > 0


def check_self_attention_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """Raise unless ``q`` and ``k`` are ``(..., n, d_k)`` of one shape and ``v`` is
    ``(..., n, d_v)``: the queries, keys and values of one sequence attending to itself."""
    if q.ndim < 2 or q.shape != k.shape or k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            "expected q and k (..., n, d_k) of one shape and v (..., n, d_v), got "
            f"{tuple(q.shape)}, {tuple(k.shape)} and {tuple(v.shape)}"
        )


def sliding_window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    dilation: int = 1,
    causal: bool = True,
) -> torch.Tensor:
    """Scaled dot-product attention restricted to a (dilated) sliding window, in O(n * window).

    Equals dense attention ``softmax(q k^T / sqrt(d_k) + mask) v`` with
    ``dilated_mask(n, window, dilation, causal)``, but never builds the ``n x n`` scores:
    each query gathers only its ``window`` (causal) or ``2 * window - 1`` keys. The keys
    are padded on the sides and viewed as overlapping windows with ``Tensor.unfold``;
    padding positions are masked out.

    Args:
        q: ``(..., n, d_k)`` queries.
        k: ``(..., n, d_k)`` keys (self-attention: as many keys as queries).
        v: ``(..., n, d_v)`` values.
        window: keys at distance less than ``window * dilation`` on the allowed side(s).
        dilation: spacing between the keys of a window, >= 1.
        causal: only keys at or before the query.

    Returns:
        ``(..., n, d_v)`` attention output.
    """
    check_int("window", window)
    check_int("dilation", dilation)
    check_self_attention_qkv(q, k, v)
    n = q.shape[-2]
    reach = (window - 1) * dilation  # the furthest key on each allowed side
    left, right = reach, (0 if causal else reach)
    span = left + right + 1
    # (..., n + left + right, d) -> (..., n, d, span): window i holds keys i - left .. i + right.
    k_win = F.pad(k, (0, 0, left, right)).unfold(-2, span, 1)[..., ::dilation]
    v_win = F.pad(v, (0, 0, left, right)).unfold(-2, span, 1)[..., ::dilation]
    scores = torch.einsum("...nd,...ndw->...nw", q, k_win) / math.sqrt(q.shape[-1])
    # key position of each slot, to mask the padding before 0 and after n - 1
    key = torch.arange(n, device=q.device).unsqueeze(1) + torch.arange(
        -left, right + 1, dilation, device=q.device
    ).unsqueeze(0)
    scores = scores.masked_fill((key < 0) | (key >= n), float("-inf"))
    return torch.einsum("...nw,...ndw->...nd", scores.softmax(dim=-1), v_win)
