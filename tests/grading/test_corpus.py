"""The fixture corpus, graded once in a batch with two workers, against what each
submission must get: full marks for every solution, exactly 0 for every untouched
exercise, and the right score and reason for each faulty or adversarial submission."""

from __future__ import annotations

import csv
import json
import tempfile
import time
from pathlib import Path

import pytest
from grading_attacks import (
    ESCAPES,
    SPREADSHEET_NAME,
    TRACES,
    chapter6_delegation,
    delegation_cases,
    host_cases,
    stand_in_cases,
)
from grading_corpus import Case, ch01_cases, malformed_cases, tensor_cases
from grading_support import LIMITS, ROOT, SOLUTIONS, leftover_processes

from llmcourse.grading import report
from llmcourse.grading.batch import grade_batch
from llmcourse.grading.folders import stale_folders
from llmcourse.grading.grade import Options
from llmcourse.grading.sandbox import probe_sandbox

FIXTURES = Path(__file__).parent / "fixtures"
HUGE = "huge_notebook"


def corpus(submissions: Path, out: Path) -> list[Case]:
    secrets = {
        "tests": ROOT / "tests" / "exercises" / "test_ch01_ngrams.py",
        "solution": ROOT / "solutions" / "ch01_ngrams.ipynb",
        "submission": submissions / "solution-ch01_ngrams.ipynb",
        "out": out,
        "git": ROOT / ".git",
        "book": ROOT / "book",
    }
    solution, exercise = ROOT / "solutions" / "ch01_ngrams.ipynb", ROOT / "exercises"
    return [
        *ch01_cases(solution, exercise / "ch01_ngrams.ipynb", secrets),
        *host_cases(solution, exercise / "ch01_ngrams.ipynb", LIMITS.scratch),
        *delegation_cases(FIXTURES / "ch95_delegation.ipynb"),
        *stand_in_cases(SOLUTIONS, exercise, ROOT / "tests" / "exercises"),
        chapter6_delegation(ROOT / "solutions" / "ch06_transformer.ipynb"),
        *tensor_cases(FIXTURES / "ch99_tensors.ipynb"),
        *malformed_cases(solution, submissions / f"{HUGE}.ipynb"),
    ]


CASES = [case.name for case in corpus(Path("/submissions"), Path("/out"))]


@pytest.fixture(scope="module")
def batch(course, tmp_path_factory):
    """Grade every chapter's solution and exercise and the corpus, in one batch."""
    root = tmp_path_factory.mktemp("batch")
    submissions, out = root / "submissions", root / "out"
    submissions.mkdir()
    cases = corpus(submissions, out)
    for case in cases:
        (submissions / f"{case.name}.ipynb").write_bytes(case.content)
    with open(submissions / f"{HUGE}.ipynb", "wb") as huge:  # 200 MB, made here, never stored
        huge.write(b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": ')
        huge.write(b'"markdown", "metadata": {}, "source": "' + b"x" * (200 << 20) + b'"}]}')
    for solution in SOLUTIONS:
        (submissions / f"solution-{solution.stem}.ipynb").write_bytes(solution.read_bytes())
        exercise = ROOT / "exercises" / solution.name
        (submissions / f"exercise-{solution.stem}.ipynb").write_bytes(exercise.read_bytes())
    slow = ["crashes", "loops_and_output", "errors", "tampering", "leaves_traces"]
    paths = sorted(submissions.glob("*.ipynb"), key=lambda p: (p.stem not in slow, p.stem))
    host = _host_state()
    start = time.monotonic()
    results = grade_batch(paths, out, Options(course, LIMITS), workers=2, progress=False)
    seconds = time.monotonic() - start
    (submissions / f"{HUGE}.ipynb").unlink()
    return {
        "host": (host, _host_state()),
        "stale": stale_folders(),
        "results": {r["student"]: r for r in results},
        "cases": {c.name: c for c in cases},
        "paths": paths,
        "submissions": submissions,
        "out": out,
        "seconds": seconds,
        "leftovers": leftover_processes(),
    }


def _host_state() -> dict[str, object]:
    """What a kernel could leave on the host: System V IPC objects, the POSIX message
    queue and the files that ``leaves_traces`` makes."""
    state: dict[str, object] = {
        kind: Path(f"/proc/sysvipc/{kind}").read_text().count("\n")
        for kind in ("shm", "msg", "sem")
    }
    folders = ("/dev/mqueue", "/run/lock", "/dev/shm", "/var/tmp", tempfile.gettempdir())
    for folder in folders:
        if Path(folder).is_dir():
            state[folder] = sorted(p.name for p in Path(folder).iterdir() if p.name in TRACES)
    return state


def test_no_process_is_left_after_the_batch(batch):
    assert batch["leftovers"] == []


def test_nothing_is_left_on_the_host_after_the_batch(batch):
    """No shared memory, message queue, semaphore set, file in /run/lock or /dev/shm,
    and no runtime folder: kernels (and the workers' fork servers) took all with them."""
    before, after = batch["host"]
    assert after == before
    assert batch["stale"] == []  # no runtime folder of a grading process that ended


def test_every_submission_has_one_result(batch):
    assert sorted(batch["results"]) == sorted(p.stem for p in batch["paths"])
    logs = sorted(p.stem for p in (batch["out"] / "logs").glob("*.json"))
    assert logs == sorted(batch["results"])


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_scores_full_marks(batch, solution):
    result = batch["results"][f"solution-{solution.stem}"]
    assert result["status"] == "graded", result["message"]
    failed = [(t["name"], t["message"]) for t in result["tests"] if not t["passed"]]
    assert not failed
    assert result["score"] == result["max_score"] > 0


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_untouched_exercise_scores_exactly_zero(batch, solution):
    result = batch["results"][f"exercise-{solution.stem}"]
    assert result["status"] == "graded", result["message"]
    assert result["score"] == 0 and result["max_score"] > 0
    assert {a["status"] for a in result["answers"]} == {"not_implemented"}
    assert {t["kind"] for t in result["tests"]} == {"not_implemented"}


def _answer_texts(result: dict, answer: str) -> list[str]:
    entry = next(a for a in result["answers"] if a["id"] == answer)
    tests = [t["message"] for t in result["tests"] if t["answer"] == answer and not t["passed"]]
    return [entry["message"]] if entry["message"] else tests


@pytest.mark.parametrize("name", CASES)
def test_corpus_submission(batch, name):
    case, result = batch["cases"][name], batch["results"][name]
    assert result["status"] == case.status, result["message"]
    if case.status == "invalid":
        assert case.message in result["message"]
        assert result["score"] == 0
        assert all(t["kind"] == "invalid" for t in result["tests"])
        return
    scores = {a["id"]: a["score"] for a in result["answers"]}
    reasons = {
        a["id"]: (
            a["message"],
            [t["message"] for t in result["tests"] if t["answer"] == a["id"] and not t["passed"]],
        )
        for a in result["answers"]
    }
    assert scores == pytest.approx(case.expected_scores(result)), reasons
    for answer, text in case.messages.items():
        texts = _answer_texts(result, answer)
        assert any(text in t for t in texts), (text, texts)
    for answer, kind in case.kinds.items():
        kinds = {t["kind"] for t in result["tests"] if t["answer"] == answer and not t["passed"]}
        assert kinds == {kind}, reasons[answer]
    for note in case.notes:
        assert any(note in n for n in result["notes"]), result["notes"]
    for answer, note in case.answer_notes.items():
        notes = next(a["notes"] for a in result["answers"] if a["id"] == answer)
        assert any(note in n for n in notes), notes


def test_an_unreadable_file_named_after_an_exercise_lists_its_tests_at_zero(batch):
    result = batch["results"]["ch01_ngrams-empty"]
    assert result["exercise"] == "ch01_ngrams" and result["max_score"] == 10
    assert result["tests"] and {t["feedback"] for t in result["tests"]} == {
        "invalid: the file is empty"
    }


def test_printed_output_is_capped(batch):
    result = batch["results"]["loops_and_output"]
    assert result["output"]["printed"] > 2 * 200_000  # the lines, in two kernels
    assert result["output"]["kept"] <= 2 * LIMITS.output_per_cell < result["output"]["printed"]
    assert (
        batch["out"] / "logs" / "loops_and_output.json"
    ).stat().st_size < 2 * LIMITS.output_per_submission


def test_forged_results_are_not_written_where_results_go(batch):
    assert not (batch["submissions"] / "results.json").exists()
    assert not (batch["out"] / "results.json").exists()
    assert sorted(p.name for p in batch["out"].iterdir()) == ["gradebook.csv", "gradescope", "logs"]


def test_the_kernel_saw_no_secret(batch):
    """The forgery submission's perplexity is only right if it could not see the tests,
    the solutions, other submissions or the results."""
    if not probe_sandbox().namespaces:
        pytest.skip("no mount namespaces here: the kernel can read the grader's files")
    result = batch["results"]["forgery"]
    assert next(a for a in result["answers"] if a["id"] == "perplexity")["score"] == 2


def test_a_huge_reply_costs_the_grader_no_memory(batch):
    """The worker that graded the submission with 50 MB replies stayed small (it had read
    ~200 MB per reply before it refused them: hundreds of bytes of memory per byte)."""
    assert batch["results"]["huge_replies"]["grader_memory_mib"] < 1500


def test_reports_are_safe_to_open_and_the_logs_exact(batch):
    """A file named as a spreadsheet formula and output full of escape sequences: the
    gradebook neutralises the formula, the text report escapes every control character
    and draws no line of its own, the JSON log keeps the exact text, in ASCII."""
    result = batch["results"][SPREADSHEET_NAME]
    text = report.text(result)
    assert not any(c in text for c in "\x1b\x07\r\u202e")
    assert [line for line in text.splitlines() if line.lstrip().startswith("total:")] == [
        "  total: 7/10"
    ]
    with open(batch["out"] / "gradebook.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert "'" + SPREADSHEET_NAME in rows
    raw = (batch["out"] / "gradebook.csv").read_bytes()
    assert b"\x1b" not in raw and b"\x07" not in raw
    log = (batch["out"] / "logs" / f"{SPREADSHEET_NAME}.json").read_bytes()
    assert log.isascii() and b"\x1b" not in log
    messages = [t["message"] for t in json.loads(log)["tests"] if not t["passed"]]
    assert any(ESCAPES in m for m in messages)


def test_hidden_feedback_shows_only_the_kind_and_the_hint(batch):
    result = batch["results"]["tensors_wrong_kinds"]
    test = next(t for t in result["tests"] if t["answer"] == "log_softmax")
    assert test["visibility"] == "after_due_date"
    assert "NaN or infinite" in test["message"]
    assert test["feedback"] == "wrong result\nHint: Subtract the row maximum before exponentiating."


def test_gradebook_has_a_row_per_submission(batch):
    with open(batch["out"] / "gradebook.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert sorted(rows) == sorted(report.csv_cell(name) for name in batch["results"])
    row = rows["errors"]
    assert row["exercise"] == "ch01_ngrams" and row["status"] == "graded"
    assert float(row["ch01_ngrams:count_ngrams"]) == 2 and float(row["total"]) == 2
    assert rows["not_json"]["status"] == "invalid" and "invalid JSON" in rows["not_json"]["message"]


def test_gradescope_results_follow_the_schema(batch):
    for student in batch["results"]:
        data = json.loads((batch["out"] / "gradescope" / student / "results.json").read_text())
        assert set(data) == {"score", "output", "tests", "visibility", "stdout_visibility"}
        assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]))
        for test in data["tests"]:
            assert set(test) == {"name", "score", "max_score", "output", "visibility"}
            assert test["visibility"] in ("visible", "hidden", "after_due_date")


def test_a_second_run_resumes_without_grading_again(batch, course):
    paths = [p for p in batch["paths"] if p.exists()]  # the huge file is gone
    start = time.monotonic()
    again = grade_batch(paths, batch["out"], Options(course, LIMITS), progress=False)
    assert time.monotonic() - start < 10
    assert [r["seconds"] for r in again] == [batch["results"][p.stem]["seconds"] for p in paths]
