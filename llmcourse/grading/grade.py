"""Grade one submission file: read, match, assemble, run the tests, summarize.

The result is a plain dictionary (the per-submission JSON log; see :func:`grade_file`)
from which :mod:`llmcourse.grading.report` derives the gradebook row, the Gradescope
``results.json`` and the text shown to instructors and students.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import resource
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import llmcourse
from llmcourse.grading import offlimits
from llmcourse.grading.limits import Limits
from llmcourse.grading.notebook import (
    Assembled,
    Exercise,
    InvalidSubmission,
    api_names,
    assemble,
    match_exercise,
    read_submission,
)
from llmcourse.grading.runner import GradingPlugin, run_tests
from llmcourse.grading.sandbox import probe_sandbox
from llmcourse.grading.session import AnswerLog, GradingSession
from llmcourse.grading.spawner import ServerSpec, server_for

REPO = Path(llmcourse.__file__).resolve().parents[1]


@dataclass(frozen=True)
class Course:
    """Where the pristine exercises and their grading tests are.

    Attributes:
        exercises: a folder of exercise notebooks, or of solution notebooks (the
            exercise is then generated from each, as ``llmcourse exercises`` does).
        tests: a folder holding ``test_<name>.py`` for each exercise, and its conftest.
    """

    exercises: Path
    tests: Path

    @classmethod
    def default(cls) -> Course:
        """The repository's solutions (the single source) and ``tests/exercises``."""
        solutions = REPO / "solutions"
        exercises = solutions if solutions.is_dir() else REPO / "exercises"
        return cls(exercises, REPO / "tests" / "exercises")

    def names(self) -> list[str]:
        """The exercises that have both a notebook and a test file."""
        return sorted(
            p.stem for p in self.exercises.glob("*.ipynb") if self.tests_file(p.stem).is_file()
        )

    def exercise(self, name: str) -> Exercise:
        """The analysed exercise ``name``."""
        return _load_exercise(self.exercises / f"{name}.ipynb")

    def tests_file(self, name: str) -> Path:
        """The grading tests of exercise ``name``."""
        return self.tests / f"test_{name}.py"

    def fingerprint(self, name: str) -> str:
        """A hash of what grading ``name`` depends on (exercise and tests)."""
        digest = hashlib.sha256()
        for path in (
            self.exercises / f"{name}.ipynb",
            self.tests_file(name),
            self.tests / "conftest.py",
        ):
            digest.update(path.read_bytes() if path.is_file() else b"")
        return digest.hexdigest()


@cache
def _load_exercise(path: Path) -> Exercise:
    return Exercise.load(path)


@dataclass(frozen=True)
class Options:
    """How to grade.

    Attributes:
        course: where exercises and tests are.
        limits: resource limits.
        exercise: grade every submission as this exercise (default: match each).
        visible_only: run only visible tests (the self-check).
    """

    course: Course = field(default_factory=Course.default)
    limits: Limits = field(default_factory=Limits)
    exercise: str | None = None
    visible_only: bool = False

    def to_json(self) -> str:
        """These options as JSON text (for worker processes)."""
        return json.dumps(
            {
                "course": [str(self.course.exercises), str(self.course.tests)],
                "limits": self.limits.as_dict(),
                "exercise": self.exercise,
                "visible_only": self.visible_only,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Options:
        """The options of :meth:`to_json`."""
        data = json.loads(text)
        exercises, tests = data["course"]
        return cls(
            Course(Path(exercises), Path(tests)),
            Limits(**data["limits"]),
            data["exercise"],
            data["visible_only"],
        )


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_options(options: Options) -> None:
    """Fail early on options no submission can be graded with.

    Raises:
        ValueError: no exercise has grading tests, or ``options.exercise`` is not one.
    """
    names = options.course.names()
    if not names:
        raise ValueError(
            f"no exercise in {options.course.exercises} has grading tests in "
            f"{options.course.tests} (use --exercises and --tests)"
        )
    if options.exercise is not None and options.exercise not in names:
        raise ValueError(f"no exercise {options.exercise!r} (have: {', '.join(names)})")


def grade_file(path: Path, options: Options) -> dict[str, Any]:
    """Grade ``path``; never raises for a bad submission (it is reported in the result).

    Returns:
        The per-submission log: ``student`` (the file's stem), ``submission``,
        ``sha256``, ``exercise``, ``status`` (``graded``, ``invalid`` or ``error``: a
        problem of the grader or the exercise, not the student), ``message``,
        ``score``, ``max_score``, ``answers`` (per answer: ``id``, ``score``,
        ``max_score``, ``status``, ``message``, ``notes``, ``output``: the start of what
        its cells printed), ``tests`` (per test case,
        see :class:`~llmcourse.grading.runner.TestResult`), ``tests_not_run`` (not
        visible, with ``visible_only``), ``notes``, ``errors``, ``sandbox``, ``limits``,
        ``grader_memory_mib`` (the grading process's peak memory so far), ``seconds``.

    Raises:
        ValueError: bad options (see :func:`check_options`).
    """
    check_options(options)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    start = time.monotonic()
    course, names = options.course, options.course.names()
    result: dict[str, Any] = {
        "student": path.stem,
        "submission": str(path),
        "sha256": sha256(path),
        "exercise": options.exercise,
        "status": "graded",
        "message": "",
        "notes": [],
        "errors": [],
        "limits": options.limits.as_dict(),
    }
    try:
        notebook, exercise = _read_and_match(path, options)
    except InvalidSubmission as err:
        name = options.exercise or _guess(path.name, names)
        result.update(status="invalid", message=str(err), exercise=name)
        plugin = None
        if name:
            tests, exercise = course.tests_file(name), course.exercise(name)
            plugin = run_tests(tests, exercise, None, options.visible_only, f"invalid: {err}")
        result.update(_summary(plugin, None, result))
        result["seconds"] = round(time.monotonic() - start, 2)
        return result
    assembled = assemble(notebook, exercise)
    sandbox = probe_sandbox()
    result.update(exercise=exercise.name, notes=assembled.notes, sandbox=sandbox.describe())
    try:
        rules = offlimits.Rules.read(course.tests_file(exercise.name))
        spec = server_spec(exercise, rules)
    except (offlimits.RulesError, SyntaxError) as err:
        result.update(status="error", message=f"the grading tests' declarations: {err}")
        result.update(_summary(None, None, result), seconds=round(time.monotonic() - start, 2))
        return result
    server = server_for(sandbox, options.limits, spec)  # warms up while pytest collects
    with GradingSession(assembled, options.limits, server, rules.stand_ins) as session:
        plugin = run_tests(
            course.tests_file(exercise.name), exercise, session, options.visible_only
        )
    result.update(_summary(plugin, session, result))
    result["output"] = {"printed": session.outputs.seen, "kept": session.outputs.kept}
    result["grader_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    result["seconds"] = round(time.monotonic() - start, 2)
    return result


def _read_and_match(path: Path, options: Options) -> tuple[dict[str, Any], Exercise]:
    """The submission's notebook and the exercise it answers.

    Raises:
        InvalidSubmission: it cannot be read, or matched to an exercise.
    """
    notebook = read_submission(path, options.limits.notebook_size)
    names = [options.exercise] if options.exercise else options.course.names()
    exercises = {name: options.course.exercise(name) for name in names}
    return notebook, match_exercise(notebook, path.name, exercises)


def exercise_hint(path: Path, options: Options) -> str:
    """The exercise ``path`` will be graded as, or "" (a batch groups its work by it)."""
    try:
        return _read_and_match(path, options)[1].name
    except (InvalidSubmission, OSError):
        return ""


def server_spec(exercise: Exercise, rules: offlimits.Rules) -> ServerSpec:
    """What the fork server of ``exercise`` prepares: the modules its cells import, and
    what is off limits in the kernel of each answer.

    Raises:
        offlimits.RulesError: a declaration names nothing.
    """
    answers = {
        answer: offlimits.entries(rules, answer, api_names(source))
        for answer, source in exercise.answers.items()
    }
    modules = {e["module"] for entries in answers.values() for e in entries if "module" in e}
    sources = [step.source for step in exercise.steps]
    imports = sorted(set().union(*map(_imported_modules, sources)) | modules)
    return ServerSpec(tuple(imports), json.dumps(answers, sort_keys=True))


def _imported_modules(source: str) -> set[str]:
    """The modules a cell imports (``import a.b``, ``from a.b import c``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _guess(filename: str, names: list[str]) -> str | None:
    """The exercise an unreadable submission was meant for, if the file name says."""
    matches = [n for n in names if n in filename]
    return matches[0] if len(matches) == 1 else names[0] if len(names) == 1 else None


def _notes(log: AnswerLog | None) -> list[str]:
    if log is None:
        return []
    times = "once" if log.restarts == 1 else f"{log.restarts} times"
    restarts = [f"calls that timed out or crashed cost the kernel: restarted {times}"]
    return log.notes + (restarts if log.restarts else [])


def _summary(
    plugin: GradingPlugin | None, session: GradingSession | None, result: dict[str, Any]
) -> dict[str, Any]:
    """Scores per answer and in total, from the tests' results."""
    tests = list(plugin.results.values()) if plugin else []
    answers = []
    for answer in plugin.exercise.answers if plugin else []:
        mine = [t for t in tests if t.answer == answer]
        log = session.logs[answer] if session else None
        entry = {
            "id": answer,
            "score": round(sum(t.score for t in mine), 4),
            "max_score": round(sum(t.max_score for t in mine), 4),
            "status": "passed" if mine and all(t.passed for t in mine) else "failed",
            "message": "",
            "notes": _notes(log),
            "output": log.output if log else "",
        }
        failed = [t for t in mine if not t.passed]
        if session and answer in session.assembled.problems:
            entry.update(status="missing", message=session.assembled.problems[answer])
        elif log and log.failure:
            entry.update(status="failed", message=log.failure)
        elif mine and all(t.kind == "not_implemented" for t in mine):
            entry.update(
                status="not_implemented",
                message="not implemented yet: replace `raise NotImplementedError()` with your code",
            )
        elif failed and all(t.kind == "off_limits" for t in failed):
            messages = sorted({t.message for t in failed})
            entry.update(status="failed" if len(failed) == len(mine) else "partial")
            entry["message"] = "; ".join(messages)
        elif any(t.passed for t in mine) and failed:
            entry["status"] = "partial"
        answers.append(entry)
    if session:
        _blame_earlier_answers(answers, session.assembled, session.stand_ins)
    errors = list(plugin.errors) if plugin else []
    if session:  # answer cells run by the grader's own code (setup, stand-ins) that failed
        errors += [
            f"answer:{answer}: {log.failure}"
            for answer, log in session.logs.items()
            if log.failure_kind == "setup_failed"
        ]
    summary = {
        "answers": answers,
        "tests": [t.as_dict() for t in tests],
        "score": round(sum(t.score for t in tests), 4),
        "max_score": round(sum(t.max_score for t in tests), 4) if plugin else None,
        "errors": errors,
        "tests_not_run": plugin.not_visible if plugin else 0,
    }
    if errors and result["status"] == "graded":
        summary.update(status="error", message="; ".join(errors)[:2000])
    return summary


def _blame_earlier_answers(
    answers: list[dict[str, Any]], assembled: Assembled, stand_ins: dict[str, str]
) -> None:
    """Say, for each answer that uses an earlier one that lost points, how that was
    handled: graded with the earlier answer's stand-in (the mistake costs points once),
    or, without a stand-in and when this answer lost points too, that its failures may
    come from the earlier answer."""
    lost = {a["id"] for a in answers if a["score"] < a["max_score"]}
    for entry in answers:
        answer = entry["id"]
        if answer not in assembled.answers:
            continue
        replaced = assembled.stand_in_dependencies(answer, stand_ins)
        for other in sorted(replaced & lost):
            entry["notes"].append(
                f"graded with the reference answer:{other} in place of yours, so that its "
                "mistakes cost points only once"
            )
        if answer not in lost:
            continue
        for other in sorted((assembled.dependencies(answer) - {answer} - replaced) & lost):
            entry["notes"].append(
                f"this answer uses answer:{other}, which lost points too: some of these "
                f"failures may come from answer:{other}; fix it first"
            )
