"""Reports that are safe to open: text for terminals, the CSV gradebook, exact JSON."""

from __future__ import annotations

import csv
import json

import pytest

from llmcourse.grading import report

ESCAPES = "\x1b[2J\x1b[H\r  total: 10/10\n\x1b]52;c;ZWNobyBvd25lZA==\x07\u202e\x9b"


def result(student: str = "alice", message: str = "") -> dict:
    test = {
        "name": "test_f",
        "answer": "f",
        "score": 0.0,
        "max_score": 1.0,
        "visibility": "visible",
        "passed": False,
        "kind": "raised",
        "message": message,
        "hint": "",
        "feedback": message,
    }
    return {
        "student": student,
        "exercise": "ch01_ngrams",
        "status": "graded",
        "message": "",
        "notes": [message],
        "answers": [
            {
                "id": "f",
                "score": 0.0,
                "max_score": 1.0,
                "status": "failed",
                "message": "",
                "notes": [message],
                "output": "",
            }
        ],
        "tests": [test],
        "score": 0.0,
        "max_score": 1.0,
    }


def test_control_characters_are_shown_escaped():
    assert report.safe_text("plain ✓ text") == "plain ✓ text"
    assert report.safe_text(ESCAPES) == (
        "\\x1b[2J\\x1b[H\\r  total: 10/10\\n\\x1b]52;c;ZWNobyBvd25lZA==\\x07\\u202e\\x9b"
    )
    assert report.safe_text("a\nb\tc", lines=True) == "a\nb\\tc"


@pytest.mark.parametrize("student_view", [False, True])
def test_no_text_from_a_submission_reaches_the_terminal_raw_or_draws_a_line(student_view):
    """Escape sequences are escaped, and a newline in a message starts an indented line:
    the only line that starts with "total:" is the report's own."""
    text = report.text(result(student=ESCAPES, message=ESCAPES), student_view)
    assert all(c.isprintable() or c == "\n" for c in text)
    totals = [line for line in text.splitlines() if line.lstrip().startswith("total:")]
    assert totals == ["total: 0/1" if student_view else "  total: 0/1"]


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("mailto:x","y")_eve', '\'=HYPERLINK("mailto:x","y")_eve'),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\\tx"),
        ("\rx", "'\\rx"),
        ("  =1", "'  =1"),
        ("bob", "bob"),
        ("a=b", "a=b"),
        (2.5, 2.5),
        (-1.0, -1.0),
    ],
)
def test_gradebook_cells_are_never_formulas(cell, written):
    assert report.csv_cell(cell) == written


def test_the_gradebook_neutralises_formulas_and_escapes(tmp_path):
    path = tmp_path / "gradebook.csv"
    report.write_gradebook([result(student="=1+2_eve", message=ESCAPES)], path)
    raw = path.read_text(encoding="utf-8")
    assert "\x1b" not in raw and "\x07" not in raw and "\u202e" not in raw
    with open(path, newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert row["student"] == "'=1+2_eve" and row["f"] == "0.0"


def test_json_logs_are_exact_and_ascii(tmp_path):
    data = result(student=ESCAPES, message=ESCAPES + " ✓")
    path = tmp_path / "log.json"
    report.write_json(data, path)
    raw = path.read_bytes()
    assert raw.isascii() and b"\x1b" not in raw
    assert json.loads(raw) == data
    gradescope = report.gradescope(data)
    assert gradescope["tests"][0]["output"] == ESCAPES + " ✓"  # Gradescope shows it as text
