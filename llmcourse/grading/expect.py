"""Assertions for grading tests that check the kind of a value before its numbers.

A wrong answer fails with a message that says what was expected::

    expect_tensor(got, like=expected)
    # AssertionError: expected Tensor[2, 4, 16] float32, got Tensor[2, 4, 16] float64

Order of checks: type, then dtype and shape, then finiteness, then values; so a NaN,
a transposed tensor or a list where a tensor belongs is named as such instead of
drowning in a value diff. (Feedback of hidden tests never shows these messages.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def describe(value: Any) -> str:
    """A short description of a value's kind: ``Tensor[2, 3] float32``, ``dict``, ``float``."""
    if isinstance(value, torch.Tensor):
        return f"Tensor{list(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, np.ndarray):
        return f"ndarray{list(value.shape)} {value.dtype}"
    if isinstance(value, list | tuple | dict | set):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def expect_type(got: Any, *types: type, what: str = "the result") -> None:
    """Fail unless ``got`` is an instance of one of ``types`` (``bool`` is not a number)."""
    numeric = {int, float} & set(types)
    if isinstance(got, types) and not (numeric and isinstance(got, bool) and bool not in types):
        return
    names = " or ".join(t.__name__ for t in types)
    raise AssertionError(f"expected {what} to be {names}, got {describe(got)}")


def expect_float(
    got: Any, expected: float, rel: float = 1e-9, abs: float = 0.0, what: str = "the result"
) -> None:
    """Fail unless ``got`` is a real number close to ``expected`` (inf and nan must match)."""
    expect_type(got, int, float, what=what)
    if math.isnan(expected) or math.isinf(expected):
        if not (got == expected or math.isnan(expected) and math.isnan(got)):
            raise AssertionError(f"expected {what} to be {expected}, got {got}")
        return
    if not math.isfinite(got):
        raise AssertionError(f"expected {what} to be the finite number {expected:.6g}, got {got}")
    if not math.isclose(got, expected, rel_tol=rel, abs_tol=abs):
        raise AssertionError(f"expected {what} to be {expected:.10g}, got {got:.10g}")


def expect_tensor(
    got: Any,
    like: torch.Tensor,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    what: str = "the result",
) -> None:
    """Fail unless ``got`` is a tensor with ``like``'s dtype and shape and close values.

    NaN and infinities in ``got`` fail where ``like`` is finite; where ``like`` is not
    finite, ``got`` must hold the same value.
    """
    if not isinstance(got, torch.Tensor) or got.dtype != like.dtype or got.shape != like.shape:
        raise AssertionError(f"expected {what} to be {describe(like)}, got {describe(got)}")
    _expect_close(got.detach().to(torch.float64), like.detach().to(torch.float64), rtol, atol, what)


def expect_array(
    got: Any,
    like: np.ndarray,
    rtol: float = 1e-7,
    atol: float = 0.0,
    what: str = "the result",
) -> None:
    """:func:`expect_tensor` for numpy arrays."""
    if not isinstance(got, np.ndarray) or got.dtype != like.dtype or got.shape != like.shape:
        raise AssertionError(f"expected {what} to be {describe(like)}, got {describe(got)}")
    _expect_close(
        torch.from_numpy(got.astype(np.float64)),
        torch.from_numpy(like.astype(np.float64)),
        rtol,
        atol,
        what,
    )


def _expect_close(
    got: torch.Tensor, like: torch.Tensor, rtol: float, atol: float, what: str
) -> None:
    finite = torch.isfinite(like)
    broken = finite & ~torch.isfinite(got)
    if broken.any():
        raise AssertionError(
            f"{what} has {int(broken.sum())} NaN or infinite values of {got.numel()} "
            "where finite values were expected"
        )
    wrong_special = ~finite & ~((got == like) | (torch.isnan(got) & torch.isnan(like)))
    difference = torch.where(finite, (got - like).abs(), torch.zeros_like(got))
    wrong = (
        difference > atol + rtol * like.abs().where(finite, torch.zeros_like(like))
    ) | wrong_special
    if wrong.any():
        worst = int(torch.argmax(torch.where(wrong, difference, torch.full_like(difference, -1.0))))
        index = (
            tuple(int(i) for i in np.unravel_index(worst, tuple(got.shape))) if got.dim() else ()
        )
        raise AssertionError(
            f"{what} differs at {int(wrong.sum())} of {got.numel()} positions; e.g. at index "
            f"{index}: got {got.reshape(-1)[worst].item():.6g}, expected "
            f"{like.reshape(-1)[worst].item():.6g} (rtol={rtol:g}, atol={atol:g})"
        )
