"""What a grading result looks like to people and tools: text, CSV, Gradescope JSON.

All functions take the per-submission result of :func:`llmcourse.grading.grade.grade_file`.
Text for students never contains more than a test's ``feedback`` (for tests that are
not visible: the kind of failure and the hint only).

Much of a result comes from the submission (its file name, what its code printed or
raised), so what people read is made safe to read: in text for a terminal, control
characters (ANSI escape sequences, carriage returns, bidirectional overrides) are
shown escaped (``\x1b``) and every continuation line of a message is indented under
its item, so no submission can draw a line of the report; in the CSV gradebook the same
escaping applies, and a cell that a spreadsheet would read as a formula (starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return; OWASP's CSV-injection rule) is
prefixed with ``'``. The JSON logs and Gradescope's ``results.json`` keep every value
exactly, written as ASCII (``\u001b``) so they are safe to print too.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

GRADESCOPE_VISIBILITY = {
    "visible": "visible",
    "hidden": "hidden",
    "after_due_date": "after_due_date",
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NAMED = {"\t": "\\t", "\r": "\\r", "\n": "\\n"}


def safe_text(value: Any, lines: bool = False) -> str:
    """``str(value)`` with every non-printable character escaped (``\x1b``, ``\u202e``);
    newlines too, unless ``lines``."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() or lines and c == "\n" else NAMED.get(c) or _escape(c) for c in text
    )


def _escape(c: str) -> str:
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _indented(value: Any, indent: int) -> str:
    """A multi-line text, safe, each continuation line indented by ``indent`` spaces."""
    return safe_text(value, lines=True).replace("\n", "\n" + " " * indent)


def csv_cell(value: Any) -> Any:
    """A gradebook cell: numbers as they are; text escaped and never a formula."""
    if not isinstance(value, str):
        return value
    text = safe_text(value)
    return "'" + text if text.lstrip()[:1] in FORMULA_START or value[:1] in "\t\r" else text


def _points(x: float | None) -> str:
    return "?" if x is None else f"{round(x, 2):g}"


def text(result: dict[str, Any], student_view: bool = False) -> str:
    """A readable report: per-answer points, the total, and the reason for every lost point.

    Args:
        result: a grading result.
        student_view: the self-check's wording (no file names, no grader details).
    """
    lines = []
    name = safe_text(result["exercise"] or "unknown exercise")
    if not student_view:
        lines.append(f"{safe_text(result['student'])} ({name}): {result['status']}")
    if result["status"] == "invalid":
        lines.append(f"  invalid submission: {_indented(result['message'], 4)}")
    elif result["status"] == "error":
        message = _indented(result["message"], 4)
        lines.append(f"  GRADER ERROR (not the student's fault): {message}")
    for note in result["notes"]:
        lines.append(f"  note: {_indented(note, 4)}")
    for answer in result["answers"]:
        mark = "ok" if answer["status"] == "passed" else "--"
        points = f"{_points(answer['score'])}/{_points(answer['max_score'])}"
        lines.append(f"  [{mark}] {safe_text(answer['id'])}: {points}")
        if answer["message"]:
            lines.append(f"        {_indented(answer['message'], 8)}")
        for note in answer["notes"]:
            lines.append(f"        note: {_indented(note, 8)}")
        if result["status"] == "invalid" or answer["message"]:
            continue  # one reason covers every test of this answer
        for test in result["tests"]:
            if test["answer"] == answer["id"] and not test["passed"]:
                lost = f"-{_points(test['max_score'])}"
                feedback = _indented(test["feedback"], 12)
                lines.append(f"        {lost} {safe_text(test['name'])}: {feedback}")
    total = f"{_points(result['score'])}/{_points(result['max_score'])}"
    lines.append(("  total: " if not student_view else "total: ") + total)
    return "\n".join(lines)


def gradescope(result: dict[str, Any]) -> dict[str, Any]:
    """Gradescope's ``results.json`` for one submission.

    One entry per test case; ``output`` is the student-safe feedback. An invalid
    submission gets its reason as the top-level ``output``.
    """
    tests = []
    for test in result["tests"]:
        output = test["feedback"] if not test["passed"] else ""
        tests.append(
            {
                "name": f"{test['answer']}: {test['name']}",
                "score": test["score"],
                "max_score": test["max_score"],
                "output": output,
                "visibility": GRADESCOPE_VISIBILITY[test["visibility"]],
            }
        )
    summary = [f"{a['id']}: {a['score']:g}/{a['max_score']:g}" for a in result["answers"]]
    messages = [a["message"] for a in result["answers"] if a["message"]]
    if result["status"] == "invalid":
        messages.insert(0, f"Invalid submission: {result['message']}")
    elif result["status"] == "error":
        messages.insert(
            0,
            "The grader failed on this submission (not your fault); your instructor has been told.",
        )
    return {
        "score": result["score"],
        "output": "\n".join(summary + result["notes"] + messages),
        "tests": tests,
        "visibility": "visible",
        "stdout_visibility": "hidden",
    }


def gradebook_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Header and rows of the gradebook: one row per submission, one column per answer.

    Answer columns are named by answer id, prefixed with the exercise when the batch
    mixes exercises.
    """
    exercises = sorted({r["exercise"] for r in results if r["exercise"]})
    columns: list[str] = []
    rows = []
    for result in results:
        row: dict[str, Any] = {
            "student": result["student"],
            "exercise": result["exercise"] or "",
            "total": result["score"],
            "max_total": result["max_score"] if result["max_score"] is not None else "",
            "status": result["status"],
            "message": result["message"],
        }
        for answer in result["answers"]:
            column = answer["id"] if len(exercises) <= 1 else f"{result['exercise']}:{answer['id']}"
            if column not in columns:
                columns.append(column)
            row[column] = answer["score"]
        rows.append(row)
    header = ["student", "exercise", *columns, "total", "max_total", "status", "message"]
    return header, sorted(rows, key=lambda r: (r["exercise"], r["student"]))


def write_gradebook(results: list[dict[str, Any]], path: Path) -> None:
    """Write the gradebook CSV."""
    header, rows = gradebook_rows(results)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[csv_cell(h) for h in header], restval="")
        writer.writeheader()
        writer.writerows({csv_cell(k): csv_cell(v) for k, v in row.items()} for row in rows)


def write_json(data: dict[str, Any], path: Path) -> None:
    """Write ``data`` as indented JSON, atomically (a crash never leaves half a file), in
    ASCII: every value exactly, and nothing a terminal would interpret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(data, indent=1, ensure_ascii=True) + "\n", encoding="ascii")
    partial.replace(path)
