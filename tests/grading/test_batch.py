"""The batch: workers that crash or hang, malformed grading tests, resuming, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from grading_attacks import SDPA, delegation_cases
from grading_corpus import dump, read, with_answers
from grading_support import FIXTURES, LIMITS, ROOT, leftover_processes

from llmcourse import cli
from llmcourse.exercises import make_exercise
from llmcourse.grading import self_check
from llmcourse.grading.batch import grade_batch
from llmcourse.grading.folders import stale_folders
from llmcourse.grading.grade import Options

BATCH_LIMITS = replace(LIMITS, submission_timeout=10, grader_margin=2, grader_memory=2 << 30)


@pytest.fixture(scope="module")
def submissions(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("submissions")
    tiny = FIXTURES / "ch98_tiny.ipynb"
    (folder / "tiny_solution.ipynb").write_bytes(tiny.read_bytes())
    exercise = make_exercise(nbformat.read(tiny, as_version=4))
    (folder / "tiny_exercise.ipynb").write_text(nbformat.writes(exercise))
    faults = read(FIXTURES / "ch97_faults.ipynb")
    for mode in ("ok", "crash", "hang", "memory"):
        answer = f"def mode():\n    return {mode!r}\n"
        (folder / f"faults_{mode}.ipynb").write_bytes(dump(with_answers(faults, {"mode": answer})))
    (folder / "markers.ipynb").write_bytes((FIXTURES / "ch96_markers.ipynb").read_bytes())
    return folder


@pytest.fixture(scope="module")
def batch(course, submissions, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    paths = sorted(submissions.glob("*.ipynb"), key=lambda p: p.stem != "faults_hang")
    results = grade_batch(paths, out, Options(course, BATCH_LIMITS), workers=2, progress=False)
    return {
        "results": {r["student"]: r for r in results},
        "leftovers": leftover_processes(),
        "left": stale_folders(),
    }


def test_a_crashing_grader_costs_one_result_not_the_batch(batch):
    result = batch["results"]["faults_crash"]
    assert result["status"] == "error" and result["message"] == "the grader crashed (exit code 3)"
    assert batch["results"]["faults_ok"]["score"] == 1


def test_a_hanging_grader_is_killed(batch):
    result = batch["results"]["faults_hang"]
    assert result["status"] == "error"
    assert result["message"] == "the grader did not finish within 12 s"


def test_a_worker_cannot_take_more_memory_than_its_limit(batch):
    """A worker's memory is capped: what a submission makes it allocate fails there
    (MemoryError, the test fails), instead of taking the machine's memory."""
    result = batch["results"]["faults_memory"]
    assert result["status"] == "graded" and result["score"] == 0
    assert "MemoryError" in result["tests"][0]["message"]


def test_nothing_is_left_running(batch):
    assert batch["leftovers"] == []


def test_workers_that_crash_or_hang_leave_no_runtime_folder(batch):
    """The crashed worker's and the killed one's folders are removed by the batch: no
    folder of a grading process that has ended is left."""
    assert batch["left"] == []


def test_malformed_grading_tests_are_grader_errors_and_the_rest_counts(batch):
    result = batch["results"]["markers"]
    assert result["status"] == "error"
    errors = "\n".join(result["errors"])
    assert "test_without_marker has no @pytest.mark.exercise" in errors
    assert "visibility must be one of" in errors
    assert "ch96_markers has no answer 'cube'" in errors
    assert [t["max_score"] for t in result["tests"]] == [0.25] * 4  # parametrized: shared
    assert result["score"] == result["max_score"] == 1


def test_hidden_tests_count_and_say_only_their_hint(batch):
    solution, exercise = batch["results"]["tiny_solution"], batch["results"]["tiny_exercise"]
    assert solution["score"] == solution["max_score"] == 2
    hidden = next(t for t in exercise["tests"] if t["visibility"] == "hidden")
    assert hidden["feedback"] == "not implemented yet\nHint: Use the GREETING constant."


def test_cli_grades_a_folder_and_resumes(course, submissions, tmp_path, capsys):
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("tiny_solution", "tiny_exercise"):
        (folder / f"{name}.ipynb").write_bytes((submissions / f"{name}.ipynb").read_bytes())
    args = ["grade", str(folder), "--out", str(tmp_path / "out"), "--quiet"]
    args += ["--exercises", str(course.exercises), "--tests", str(course.tests), "--workers", "2"]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "tiny_solution (ch98_tiny): graded\n  [ok] greet: 2/2\n  total: 2/2" in text
    assert (
        "tiny_exercise (ch98_tiny): graded\n  [--] greet: 0/2\n        not implemented yet" in text
    )
    log = tmp_path / "out" / "logs" / "tiny_solution.json"
    first = json.loads(log.read_text())["seconds"]
    assert cli.main(args) == 0  # resumed: nothing graded again
    assert json.loads(log.read_text())["seconds"] == first
    (folder / "tiny_solution.ipynb").write_text((folder / "tiny_solution.ipynb").read_text() + " ")
    assert cli.main([*args, "--force"]) == 0
    assert "total: 2/2" in capsys.readouterr().out


def test_cli_refuses_what_cannot_work(submissions, capsys):
    assert cli.main(["grade", str(submissions), "--out", str(submissions / "results")]) == 2
    assert "beside the submissions" in capsys.readouterr().err
    assert cli.main(["grade", str(submissions), "--exercise", "ch99_none", "--quiet"]) == 2
    assert "no exercise 'ch99_none' (have: ch01_ngrams" in capsys.readouterr().err


def test_check_runs_the_visible_tests_on_the_saved_file(course, submissions):
    command = [
        sys.executable,
        "-m",
        "llmcourse.cli",
        "check",
        str(submissions / "tiny_exercise.ipynb"),
    ]
    command += ["--exercises", str(course.exercises), "--tests", str(course.tests)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith(
        "Self-check of tiny_exercise.ipynb (visible tests; the grade also runs 1 hidden test)\n"
        "  [--] greet: 0/1\n        not implemented yet"
    )
    assert done.stdout.rstrip().endswith("Fix what is listed above, save, and check again.")


def test_check_says_what_an_answer_must_not_use(course, tmp_path):
    """The self-check names the function an answer delegates to, as the grade does."""
    cases = delegation_cases(FIXTURES / "ch95_delegation.ipynb")
    case = next(c for c in cases if c.name == "delegates")
    notebook = tmp_path / "ch95_delegation.ipynb"
    notebook.write_bytes(case.content)
    command = [sys.executable, "-m", "llmcourse.cli", "check", str(notebook)]
    command += ["--exercises", str(course.exercises), "--tests", str(course.tests)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"attend uses {SDPA}, which this exercise asks you to write" in done.stdout
    assert "  [ok] attend_twice: 1/1" in done.stdout


def test_self_check_grades_the_saved_file_and_never_raises(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    self_check("ch01_ngrams")
    assert "Cannot find ch01_ngrams.ipynb" in capsys.readouterr().out
    (tmp_path / "ch01_ngrams.ipynb").write_bytes(
        (ROOT / "exercises" / "ch01_ngrams.ipynb").read_bytes()
    )
    self_check("ch01_ngrams")
    out = capsys.readouterr().out
    assert out.startswith("Checking the saved file ch01_ngrams.ipynb")
    assert "  [--] count_ngrams: 0/2\n        not implemented yet" in out and "total: 0/10" in out
