"""Argument checks shared by the whole package: one wording for every error.

Public functions validate what they are given at their boundary and raise a
``ValueError`` (``TypeError`` for a value of the wrong kind of container) that says
what was expected and what came instead, e.g. ``top_p must be in (0, 1], got 1.5``.
The checks read Python values and tensor metadata (dtype, shape, device) only, never
tensor contents, so they cost nothing and force no host-device synchronisation: they
may run on every forward pass. A check of tensor *contents* (the range of ids, the rows
of a mask) in a forward pass runs only where it is cheap and synchronises nothing, on
tensors in host memory (:func:`on_host`); on an accelerator it is skipped. Functions
that run once, outside training and generation loops, check contents everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import torch
from torch import Tensor, nn


def is_int(value: object) -> bool:
    """Whether ``value`` is a Python integer (``bool`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """Whether ``value`` is a real Python number (``int`` or ``float``, not ``bool``)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an integer ``>= minimum``; else ``ValueError: name must be an
    integer >= minimum, got value``."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_int_in(name: str, value: object, low: int, high: int) -> int:
    """``value`` if it is an integer in ``[low, high]``."""
    if not is_int(value) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def check_positive(name: str, value: object) -> float:
    """``value`` if it is a finite number ``> 0``."""
    if not is_number(value) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def check_non_negative(name: str, value: object) -> float:
    """``value`` if it is a finite number ``>= 0``."""
    if not is_number(value) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def check_probability(name: str, value: object) -> float:
    """``value`` if it is a number in ``[0, 1)``: a dropout rate, a masking rate."""
    if not is_number(value) or not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def check_choice(name: str, value: object, choices: Collection[object]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def describe(value: object) -> str:
    """How an error message names what it got: ``dtype (shape)`` for a tensor."""
    if isinstance(value, Tensor):
        return f"{value.dtype} {tuple(value.shape)}"
    return type(value).__name__


def check_float_tensor(name: str, value: object, ndim: int | None = None) -> Tensor:
    """``value`` if it is a floating-point tensor (with ``ndim`` dimensions if given)."""
    if (
        not isinstance(value, Tensor)
        or not value.is_floating_point()
        or (ndim is not None and value.ndim != ndim)
    ):
        shape = f"{ndim}-D " if ndim is not None else ""
        raise ValueError(f"{name} must be a {shape}floating-point tensor, got {describe(value)}")
    return value


def check_token_ids(name: str, value: object, ndim: int = 2) -> Tensor:
    """``value`` if it is a non-empty long tensor of ``ndim`` dimensions (``(batch,
    time)`` by default). Only metadata is read: the ids' range is the embedding's check."""
    if (
        not isinstance(value, Tensor)
        or value.dtype != torch.long
        or value.ndim != ndim
        or 0 in value.shape
    ):
        shape = "(batch, time)" if ndim == 2 else f"{ndim}-D"
        raise ValueError(f"{name} must be a non-empty {shape} long tensor, got {describe(value)}")
    return value


def check_same_shape(**tensors: Tensor) -> None:
    """Raise unless every keyword tensor has the same shape: ``check_same_shape(a=a, b=b)``."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"{', '.join(shapes)} must have the same shape, got {listed}")


def embedding_lookup(embedding: nn.Embedding, ids: Tensor, name: str) -> Tensor:
    """``embedding(ids)``; an id outside the table is reported as a ValueError that names
    ``name`` and the allowed range. The lookup checks the range itself, so valid ids
    cost no extra pass and no synchronisation; only a failed lookup reads the ids."""
    try:
        return embedding(ids)
    except IndexError:
        low, high = int(ids.min()), int(ids.max())
        raise ValueError(
            f"{name} ids must be in [0, {embedding.num_embeddings}), got {low}..{high}"
        ) from None


def on_host(tensor: Tensor) -> bool:
    """Whether ``tensor``'s values are in host memory (the CPU), where a forward pass may
    read them for a check at no cost of synchronisation."""
    return tensor.device.type == "cpu"
