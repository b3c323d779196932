"""Checkpoints that survive a crash, hold only plain data, and restore the random state.

:func:`save_checkpoint` writes atomically: the state goes to a temporary file in the
same directory, is flushed and fsynced, and only then renamed over the final path with
``os.replace``. A crash in the middle of a save leaves the previous checkpoint intact
and no partial file at the final path. :func:`load_checkpoint` reads with
``torch.load(..., weights_only=True)``, so a checkpoint is tensors, numbers, strings,
lists, tuples and dicts, never pickled objects that could run code.

:func:`rng_state` and :func:`set_rng_state` capture and restore the three random
number generators a CPU run uses (torch, Python's ``random`` and numpy's global one),
which an exact resume needs: dropout masks after a resume are the ones an
uninterrupted run would have drawn.

:func:`check_resumable` refuses to resume from a checkpoint of another model or of a run
with other settings, and says what differs.
"""

from __future__ import annotations

import os
import random
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically.

    Args:
        state: plain data: tensors, numbers, strings, None, and lists, tuples and dicts
            of them (what ``torch.load(..., weights_only=True)`` accepts).
        path: the checkpoint file; its directory must exist. An existing file is replaced
            only once the new one is complete on disk.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the checkpoint directory {str(path.parent)!r} does not exist")
    # A fresh name in the same directory (so that os.replace is a rename on one file
    # system), created exclusively and with the usual permissions (mkstemp's are 0600).
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    file = temporary.open("xb")
    try:
        with file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX; Windows cannot open a directory)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing pickled objects."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{str(path)!r} is not a checkpoint: it holds a {type(state).__name__}")
    return state


def rng_state() -> dict[str, Any]:
    """The state of torch's CPU generator, Python's ``random`` and numpy's global generator."""
    # numpy's global generator is the legacy one that np.random.* functions draw from.
    name, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators from a :func:`rng_state` dictionary."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["gauss"],
        )
    )


CHECKPOINT_FORMAT = 1
"""The ``"format"`` of training checkpoints written by :func:`llmcourse.training.train`."""


def check_resumable(
    checkpoint: dict[str, Any],
    model: nn.Module,
    config: dict[str, Any],
    path: str | os.PathLike,
) -> None:
    """Raise a ValueError unless ``checkpoint`` was written by a training run with the same
    ``config`` (the run's settings) for a model with ``model``'s parameter names and shapes."""
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a training checkpoint written by train")
    saved_config = checkpoint["config"]
    differences = [
        f"{name}={saved_config.get(name)!r} there, {value!r} here"
        for name, value in config.items()
        if saved_config.get(name) != value
    ]
    if differences:
        raise ValueError(
            f"cannot resume from {str(path)!r}: it was written by a run with other "
            f"settings: {'; '.join(differences)}"
        )
    saved = {name: tuple(tensor.shape) for name, tensor in checkpoint["model"].items()}
    current = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    problems = [f"{name!r} is missing here" for name in saved.keys() - current.keys()]
    problems += [f"{name!r} is not in the checkpoint" for name in current.keys() - saved.keys()]
    problems += [
        f"{name!r} has shape {saved[name]} there and {current[name]} here"
        for name in saved.keys() & current.keys()
        if saved[name] != current[name]
    ]
    if problems:
        raise ValueError(
            f"cannot resume from {str(path)!r}: it holds a different model: "
            + "; ".join(sorted(problems))
        )
