"""What a training run records: the per-step history, and a JSON-lines experiment log.

:class:`History` keeps, in memory, each step's loss, gradient norm and learning rate and
every evaluation. :func:`experiment_log` writes the same records to a file as they
happen, one JSON object per line, so that a run can be watched while it trains and
plotted afterwards with nothing but ``json``; a resumed run keeps the records up to
its checkpoint and continues the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


@dataclass
class History:
    """Per-step training loss, gradient norm (before clipping) and learning rate, and
    the evaluations (the steps they ran after and their values)."""

    train_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)

    def record(self, record: dict) -> None:
        """Append one step's record (``loss``, ``grad_norm``, ``lr``, and ``eval_loss``
        after an evaluation) as the loop writes it to the log."""
        self.train_loss.append(record["loss"])
        self.grad_norm.append(record["grad_norm"])
        self.lr.append(record["lr"])
        if "eval_loss" in record:
            self.eval_steps.append(record["step"])
            self.eval_loss.append(record["eval_loss"])


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a JSON-lines log, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line]


@contextlib.contextmanager
def experiment_log(path: str | os.PathLike | None, start: int = 0) -> Iterator[TextIO | None]:
    """The JSON-lines log at ``path`` opened for writing, keeping the records of steps
    ``<= start`` (those of the checkpoint a run resumes from); None yields None."""
    if path is None:
        yield None
        return
    path = Path(path)
    kept = []
    if start and path.exists():
        kept = [record for record in read_log(path) if record["step"] <= start]
    with path.open("w") as log:
        log.writelines(json.dumps(record) + "\n" for record in kept)
        log.flush()
        yield log


def write_record(log: TextIO | None, record: dict) -> None:
    """Append one record to an open log (nothing if ``log`` is None), flushed at once."""
    if log is not None:
        log.write(json.dumps(record) + "\n")
        log.flush()
