"""Shared fixtures of the grader's tests: a course to grade against."""

from __future__ import annotations

import shutil

import pytest
from grading_support import FIXTURES, ROOT, SOLUTIONS

from llmcourse.grading.grade import Course

collect_ignore_glob = ["fixtures/*"]  # grading tests of the synthetic exercises, run by the grader


@pytest.fixture(scope="session")
def course(tmp_path_factory: pytest.TempPathFactory) -> Course:
    """Every chapter of the repository plus the synthetic exercises of ``fixtures/``:
    solution notebooks in ``exercises/``, grading tests and their conftest in ``tests/``."""
    root = tmp_path_factory.mktemp("course")
    exercises, tests = root / "exercises", root / "tests"
    exercises.mkdir()
    tests.mkdir()
    for path in [*SOLUTIONS, *FIXTURES.glob("*.ipynb")]:
        shutil.copy(path, exercises)
    for path in [*(ROOT / "tests" / "exercises").glob("*.py"), *FIXTURES.glob("test_*.py")]:
        shutil.copy(path, tests)
    return Course(exercises, tests)
