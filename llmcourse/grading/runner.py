"""Run a chapter's grading tests (pytest, in this trusted process) against one submission.

The tests are ordinary pytest functions in ``tests/exercises/test_chNN_name.py``; a
plugin gives them the student (through ``config.stash[GRADING]``, which the chapter
``conftest.py`` reads), and records, per test, its points and outcome:

``@pytest.mark.exercise(answer_id, points=1, visibility="visible", hint=None)``
    ``visibility`` is ``"visible"`` (run by the self-check, feedback in full),
    ``"hidden"`` or ``"after_due_date"`` (feedback is only the hint and the kind of
    failure, never inputs or expected values). ``hint`` is shown when the test fails.

Scoring: a test scores all its points or none (passed or not; a skip is not a pass).
The points of a parametrized test are shared equally by its cases, so the marker's
points are what the whole test function is worth. An answer's score is the sum of its
tests' scores, the submission's the sum over answers.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from llmcourse.grading.errors import KINDS, StudentError
from llmcourse.grading.notebook import Exercise
from llmcourse.grading.session import GradingSession, Student

GRADING = pytest.StashKey["GradingPlugin"]()
SEEDS = pytest.StashKey[Callable[[], int]]()  # where fresh_seed draws from, if set (a sweep)
VISIBILITIES = ("visible", "hidden", "after_due_date")
FAILURE_KINDS = {
    **KINDS,
    "wrong": "wrong result",
    "no_raise": "did not raise the expected exception",
    "invalid": "the submission could not be graded",
}
MESSAGE_CHARS = 1500
PYTEST_HINT = re.compile(
    r"\n *(\.\.\.)?(Full output truncated, )?[Uu]se '?-v+'? to (get more diff|show)\)?"
)
MARKER = (
    "exercise(answer_id, points, visibility='visible', hint=None): a grading test of one "
    "exercise answer, its points, who sees it (visible | hidden | after_due_date) and a hint"
)


@dataclass
class TestResult:
    """One test case of one submission.

    Attributes:
        name: the test's id, e.g. ``test_perplexity_edge_cases`` or ``test_x[2]``.
        answer: the answer id it grades.
        score, max_score: points earned and possible.
        visibility: who may see it.
        passed: whether it passed.
        kind: for a failure, the key of :data:`FAILURE_KINDS`.
        message: for a failure, what went wrong (may contain inputs and expected values).
        hint: the marker's hint.
    """

    name: str
    answer: str
    score: float
    max_score: float
    visibility: str
    passed: bool = False
    kind: str = ""
    message: str = ""
    hint: str = ""

    def feedback(self) -> str:
        """What the student may see: everything for visible tests, else kind and hint."""
        if self.passed:
            return ""
        if self.kind == "invalid":
            return self.message
        parts = [self.message if self.visibility == "visible" else FAILURE_KINDS[self.kind]]
        if self.hint:
            parts.append(f"Hint: {self.hint}")
        return "\n".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "feedback": self.feedback()}


def _marker(item: pytest.Item) -> tuple[str, float, str, str]:
    """(answer id, points, visibility, hint) of a test.

    Raises:
        ValueError: no marker or bad arguments.
    """
    mark = item.get_closest_marker("exercise")
    if mark is None:
        raise ValueError(f"{item.nodeid} has no @pytest.mark.exercise(answer_id, points=...)")
    return _marker_args(*mark.args, **mark.kwargs)


def _marker_args(
    answer: str, points: float = 1, visibility: str = "visible", hint: str | None = None
) -> tuple[str, float, str, str]:
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {VISIBILITIES}, got {visibility!r}")
    if not points > 0:
        raise ValueError(f"points must be positive, got {points!r}")
    return answer, points, visibility, hint or ""


def _function(item: pytest.Item) -> tuple[str, str]:
    """The test function an item is a case of: (file, name without parameters)."""
    return item.nodeid.split("::")[0], getattr(item, "originalname", item.name)


def _failure(excinfo: pytest.ExceptionInfo[BaseException]) -> tuple[str, str]:
    """(kind, message) of a failed test."""
    err = excinfo.value
    if isinstance(err, StudentError):
        return err.kind, err.summary
    if isinstance(err, pytest.fail.Exception) and "DID NOT RAISE" in str(err):
        return "no_raise", str(err).replace("DID NOT RAISE", "did not raise")
    text = PYTEST_HINT.sub("", excinfo.exconly()).rstrip()
    if len(text) > MESSAGE_CHARS:
        text = text[:MESSAGE_CHARS] + " ..."
    return "wrong", text


class GradingPlugin:
    """The pytest plugin of one grading run.

    Args:
        exercise: the exercise the tests are for.
        session: the submission's kernels, or None to only collect the tests.
        visible_only: run only visible tests (the student's self-check).
        invalid: with no session: why every test scores 0.
    """

    def __init__(
        self,
        exercise: Exercise,
        session: GradingSession | None,
        visible_only: bool = False,
        invalid: str = "",
    ) -> None:
        self.exercise, self.session = exercise, session
        self.visible_only, self.invalid = visible_only, invalid
        self.results: dict[str, TestResult] = {}
        self.errors: list[str] = []
        self.not_visible = 0  # tests left out by visible_only

    def student(self, item: pytest.Item) -> Student:
        """The student for a test (used by the chapter's ``student`` fixture)."""
        assert self.session is not None
        return self.session.student(_marker(item)[0])

    @pytest.hookimpl
    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", MARKER)
        config.stash[GRADING] = self

    @pytest.hookimpl
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append(
                f"collecting {report.nodeid or 'the tests'} failed:\n{report.longreprtext}"
            )

    @pytest.hookimpl
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        cases = Counter(_function(item) for item in items)
        order = {answer: i for i, answer in enumerate(self.exercise.answers)}
        kept, dropped = [], []
        for item in items:
            try:
                answer, points, visibility, hint = _marker(item)
            except (ValueError, TypeError) as err:
                self.errors.append(f"{item.nodeid}: {err}")
                dropped.append(item)
                continue
            if answer not in order:
                self.errors.append(f"{item.nodeid}: {self.exercise.name} has no answer {answer!r}")
                dropped.append(item)
                continue
            if self.visible_only and visibility != "visible":
                self.not_visible += 1
                dropped.append(item)
                continue
            share = Fraction(points) / cases[_function(item)]
            self.results[item.nodeid] = TestResult(
                item.name, answer, 0.0, float(share), visibility, hint=hint,
                kind="invalid" if self.invalid else "", message=self.invalid,
            )  # fmt: skip
            kept.append(item)
        kept.sort(key=lambda item: order[self.results[item.nodeid].answer])
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        result = self.results.get(item.nodeid)
        if result is None or report.when == "teardown" and report.passed:
            return report
        if report.when == "call" and report.passed:
            result.passed, result.score = True, result.max_score
        elif report.failed and not result.kind:
            if call.excinfo is not None:
                result.kind, result.message = _failure(call.excinfo)
            else:
                result.kind, result.message = "wrong", report.longreprtext[:MESSAGE_CHARS]
            result.passed, result.score = False, 0.0
        elif report.skipped and not result.kind:
            result.kind, result.message = "wrong", "the test was skipped"
        return report


# pytest plugins grading does not use (unraisableexception alone spent 0.2 s per
# submission collecting garbage)
UNUSED_PLUGINS = (
    "cacheprovider",
    "terminal",
    "unraisableexception",
    "threadexception",
    "junitxml",
    "pastebin",
    "doctest",
    "stepwise",
)


def pytest_args(tests_file: Path) -> list[str]:
    """Arguments for ``pytest.main``: one test file, no configuration files, no cache,
    none of pytest's plugins that grading does not use."""
    args = [str(tests_file), "-c", os.devnull, "--rootdir", str(tests_file.parent)]
    for plugin in UNUSED_PLUGINS:
        args += ["-p", f"no:{plugin}"]
    return [*args, "-W", "ignore::DeprecationWarning"]


def run_tests(
    tests_file: Path,
    exercise: Exercise,
    session: GradingSession | None,
    visible_only: bool = False,
    invalid: str = "",
) -> GradingPlugin:
    """Run (or, without a session, only collect) the tests of ``tests_file``.

    Plugins installed in the environment are not loaded (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``
    must be set by the caller's process; :func:`grade` does).
    """
    plugin = GradingPlugin(exercise, session, visible_only, invalid)
    args = pytest_args(tests_file) + ([] if session else ["--collect-only"])
    code = pytest.main(args, plugins=[plugin])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not plugin.errors:
        plugin.errors.append(f"pytest stopped with exit code {int(code)}")
    return plugin
