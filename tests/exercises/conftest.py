"""Fixtures for the grading tests of each chapter's exercises.

A grading test module sets ``NOTEBOOK = "chNN_name"`` and takes the ``student``
fixture; it calls the answers only through ``student.call(name, *args)`` with plain
data, and compares what comes back with ``llmcourse`` or with values derived by hand.
Here ``student`` runs the reference solution notebook, so every grading test must
pass: that is the proof that the tests accept a correct answer.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import nbformat
import pytest

SOLUTIONS = Path(__file__).resolve().parents[2] / "solutions"


class NotebookStudent:
    """Executes a notebook's code cells in a fresh namespace and calls its functions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.namespace: dict[str, Any] = {"__name__": "__student__"}
        notebook = nbformat.read(path, as_version=4)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code":
                exec(compile(cell.source, f"{path.name}[cell {index}]", "exec"), self.namespace)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the notebook's function ``name``; fails the test if it is not defined."""
        function = self.namespace.get(name)
        if not callable(function):
            pytest.fail(f"{self.path.name} defines no function {name!r}")
        return function(*args, **kwargs)


@pytest.fixture(scope="module")
def student(request: pytest.FixtureRequest) -> NotebookStudent:
    return NotebookStudent(SOLUTIONS / f"{request.module.NOTEBOOK}.ipynb")


@pytest.fixture
def fresh_seed() -> int:
    """A seed drawn anew on every run, so answers cannot be a table of known outputs."""
    return random.SystemRandom().randrange(2**31)
