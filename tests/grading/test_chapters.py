"""Every chapter's grading tests fit its exercise: each answer is tested, each test grades an
answer, and the points of an answer's tests add up to the points its heading announces."""

from __future__ import annotations

import importlib.util
import re
from collections import defaultdict

import nbformat
import pytest
from grading_support import ROOT, SOLUTIONS

from llmcourse.exercises import answer_id
from llmcourse.grading.grade import server_spec
from llmcourse.grading.notebook import Exercise
from llmcourse.grading.offlimits import Rules
from llmcourse.grading.runner import VISIBILITIES

POINTS = re.compile(r"\((\d+(?:\.\d+)?) points?\)")


def announced_points(solution) -> dict[str, float]:
    """answer id -> the points in the last markdown heading above its cell that has some."""
    points, current = {}, None
    for cell in nbformat.read(solution, as_version=4).cells:
        if cell.cell_type == "markdown" and (match := POINTS.search(cell.source)):
            current = float(match.group(1))
        elif (ident := answer_id(cell)) and current is not None:
            points[ident], current = current, None
    return points


def points_of_tests(solution) -> dict[str, float]:
    """answer id -> the sum of the points of its grading tests' markers."""
    path = ROOT / "tests" / "exercises" / f"test_{solution.stem}.py"
    spec = importlib.util.spec_from_file_location(f"grading_tests_{solution.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.NOTEBOOK == solution.stem
    points: dict[str, float] = defaultdict(float)
    for name, function in vars(module).items():
        if not name.startswith("test_"):
            continue
        marks = [m for m in getattr(function, "pytestmark", []) if m.name == "exercise"]
        assert len(marks) == 1, f"{name} needs one @pytest.mark.exercise"
        kwargs = marks[0].kwargs
        assert kwargs.get("visibility", "visible") in VISIBILITIES, name
        points[marks[0].args[0]] += kwargs.get("points", 1)
    return dict(points)


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_tests_cover_the_answers_with_the_announced_points(solution):
    answers = [answer_id(c) for c in nbformat.read(solution, as_version=4).cells if answer_id(c)]
    tested = points_of_tests(solution)
    assert sorted(tested) == sorted(answers), "every answer needs tests, every test an answer"
    announced = announced_points(solution)
    assert {a: tested[a] for a in announced} == announced


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_off_limits_names_and_stand_ins_exist(solution):
    """Every name a chapter declares off limits exists (a renamed module fails here, not
    while grading), and every stand-in is for one of its answers and is valid Python."""
    rules = Rules.read(ROOT / "tests" / "exercises" / f"test_{solution.stem}.py")
    exercise = Exercise.load(solution)
    assert set(rules.off_limits) | set(rules.stand_ins) <= set(exercise.answers)
    server_spec(exercise, rules)  # resolves every name; raises RulesError otherwise
    for source in rules.stand_ins.values():
        compile(source, "stand-in", "exec")
