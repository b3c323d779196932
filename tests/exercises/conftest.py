"""Fixtures for the grading tests of each chapter's exercises.

A grading test module sets ``NOTEBOOK = "chNN_name"`` and takes the ``student``
fixture; it calls the answers only through ``student.call(name, *args)`` with plain
data, and compares what comes back with ``llmcourse`` or with values derived by hand.

The same tests run in two ways:

- ``llmcourse grade`` / ``llmcourse check``: the grader's pytest plugin is active, and
  ``student`` calls the submission's functions in its sandboxed kernels (see
  ``llmcourse.grading``).
- ``make test``: ``student`` runs the reference solution notebook in this process, and
  every call goes through the grader's plain-data encoding both ways, as in a kernel
  (a Counter argument stays a Counter, a returned Counter comes back as a dict, a
  tensor as a fresh tensor). So every grading test must pass here: that is the proof
  that the tests accept a correct answer. ``tests/grading/test_corpus.py`` then grades
  every solution through the real kernels and checks it scores full marks.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import nbformat
import pytest

from llmcourse.grading.runner import GRADING, SEEDS
from llmcourse.grading.session import Student, in_process_student

SOLUTIONS = Path(__file__).resolve().parents[2] / "solutions"


class NotebookStudent:
    """Executes a notebook's code cells (but the self-check) in a fresh namespace."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.namespace: dict[str, Any] = {"__name__": "__student__"}
        notebook = nbformat.read(path, as_version=4)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code" and "self-check" not in cell.metadata.get("tags", []):
                exec(compile(cell.source, f"{path.name}[cell {index}]", "exec"), self.namespace)
        self.student = in_process_student(self.namespace)


@pytest.fixture(scope="module")
def reference(request: pytest.FixtureRequest) -> NotebookStudent | None:
    """The reference solution, executed once per module (not when grading a submission)."""
    if request.config.stash.get(GRADING, None) is not None:
        return None
    return NotebookStudent(SOLUTIONS / f"{request.module.NOTEBOOK}.ipynb")


@pytest.fixture
def student(request: pytest.FixtureRequest, reference: NotebookStudent | None) -> Student:
    plugin = request.config.stash.get(GRADING, None)
    if plugin is not None:
        return plugin.student(request.node)
    assert reference is not None
    return reference.student


@pytest.fixture
def fresh_seed(request: pytest.FixtureRequest) -> int:
    """A seed drawn anew on every run, so answers cannot be a table of known outputs
    (``scripts/seed_sweep.py`` sets the seeds instead, to check thousands of them)."""
    seeds = request.config.stash.get(SEEDS, None)
    return seeds() if seeds is not None else random.SystemRandom().randrange(2**31)
