"""Reading submissions, matching them to exercises and assembling what runs (no kernel)."""

from __future__ import annotations

import copy
import json
import re

import nbformat
import pytest
from grading_support import ROOT

from llmcourse.grading.notebook import (
    Exercise,
    InvalidSubmission,
    assemble,
    defined_names,
    match_exercise,
    read_submission,
    used_names,
)

CH01 = ROOT / "solutions" / "ch01_ngrams.ipynb"


def notebook(*cells: tuple[str, str], **metadata) -> dict:
    """A raw notebook of code cells given as (answer id or "", source)."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": metadata,
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"tags": [f"answer:{ident}"]} if ident else {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for ident, source in cells
        ],
    }


def exercise(*cells: tuple[str, str]) -> Exercise:
    return Exercise.from_notebook("demo", nbformat.from_dict(notebook(*cells)))


def test_chapter_1_setup_is_the_cells_that_use_no_answer():
    ex = Exercise.load(CH01)
    assert list(ex.answers) == ["count_ngrams", "mle_next_word", "add_k_prob", "perplexity"]
    setup = [s.label for s in ex.steps if s.answer is None]
    assert setup == ["setup cell 1"]  # not the examples, nor the self-check
    assert Exercise.load(ROOT / "exercises" / "ch01_ngrams.ipynb") == ex


def test_plans_run_setup_the_answer_and_what_it_uses():
    ex = Exercise.load(CH01)
    assembled = assemble(json.loads(CH01.read_text()), ex)
    labels = [s.label for s in assembled.plan("mle_next_word")]
    assert labels == ["setup cell 1", "answer:count_ngrams", "answer:mle_next_word"]
    assert [s.label for s in assembled.plan("add_k_prob")] == ["setup cell 1", "answer:add_k_prob"]
    skipped = assembled.plan("mle_next_word", skip={"count_ngrams"})
    assert [s.label for s in skipped] == ["setup cell 1", "answer:mle_next_word"]


def test_dependencies_are_transitive_and_ignore_names_from_setup():
    ex = exercise(
        ("", "from collections import Counter"),
        ("a", "def a():\n    return helper()"),
        ("b", "from collections import Counter\ndef b():\n    return Counter()"),
        ("c", "def helper():\n    return b()"),
    )
    sub = assemble(notebook(*[(s.answer or "", s.source) for s in ex.steps]), ex)
    assert sub.dependencies("a") == {"a", "b", "c"}
    assert sub.dependencies("b") == {"b"}


def test_a_stand_in_follows_the_cell_of_the_answer_it_stands_in_for():
    """Only in the kernels of answers that use it, even when the answer it stands in for
    is missing or skipped; never in its own."""
    ex = exercise(
        ("", "import math"),
        ("a", "def a(x): ..."),
        ("b", "def b(x): ..."),
        ("c", "def c(x): ..."),
    )
    raw = notebook(
        ("a", "def a(x): return 1"), ("b", "def b(x): return a(x) + 1"), ("c", "def c(x): b(x)")
    )
    sub = assemble(raw, ex)
    stand_ins = {"a": "def a(x): return 2"}
    assert sub.stand_in_dependencies("b", stand_ins) == {"a"}
    assert sub.stand_in_dependencies("c", stand_ins) == {"a"}  # through b
    labels = [s.label for s in sub.plan("b", stand_ins=stand_ins)]
    assert labels == ["setup cell 0", "answer:a", "the stand-in for answer:a", "answer:b"]
    skipped = [s.label for s in sub.plan("b", skip={"a"}, stand_ins=stand_ins)]
    assert skipped == ["setup cell 0", "the stand-in for answer:a", "answer:b"]
    assert [s.label for s in sub.plan("a", stand_ins=stand_ins)] == ["setup cell 0", "answer:a"]
    missing = assemble(notebook(("b", "def b(x): return a(x)")), ex)
    assert [s.stand_in for s in missing.plan("b", stand_ins=stand_ins)] == [None, "a", None]


def test_names_survive_magics_and_syntax_errors():
    source = "%matplotlib inline\nx = 1\nimport numpy as np\nfor i in range(2): pass"
    assert defined_names(source) == {"x", "np", "i"}
    assert "helper" in used_names("def f():\n    return helper()")
    assert defined_names("def f(:") == frozenset()


def test_assemble_takes_answers_by_tag_and_reports_problems():
    ex = exercise(
        ("", "X = 1"), ("f", "def f(): ..."), ("g", "def g(): ..."), ("h", "def h(): ...")
    )
    raw = notebook(
        ("f", "def f(): return 1"),
        ("f", "def f(): return 2"),
        ("zzz", "pass"),
        ("", "X = 2"),
        ("h", "def h(): pass"),
    )
    raw["cells"][-1]["cell_type"] = "raw"
    sub = assemble(raw, ex)
    assert sub.answers == {"f": "def f(): return 2"}
    assert "no cell tagged answer:g" in sub.problems["g"]
    assert "is a raw cell, not code" in sub.problems["h"]
    assert any("2 cells are tagged answer:f" in n for n in sub.notes)
    assert any("answer:zzz" in n for n in sub.notes)
    assert [s.source for s in sub.plan("f")] == [
        "X = 1",
        "def f(): return 2",
    ]  # setup is the exercise's


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"\x89PNG", "invalid JSON"),
        (b"[1, 2]", "JSON but not a Jupyter notebook"),
        (json.dumps({"nbformat": 3, "worksheets": []}).encode(), "format version 3"),
        (
            json.dumps({"nbformat": 4, "cells": [{"cell_type": "code", "source": 7}]}).encode(),
            "cells are malformed",
        ),
        (
            json.dumps(notebook(kernelspec={"name": "julia-1.9", "language": "julia"})).encode(),
            "kernel 'julia-1.9' (julia)",
        ),
        (json.dumps(notebook(kernelspec={"name": "ir"})).encode(), "kernel 'ir'"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
    ],
)
def test_unreadable_submissions_say_why(tmp_path, content, reason):
    path = tmp_path / "sub.ipynb"
    path.write_bytes(content)
    with pytest.raises(InvalidSubmission, match=re.escape(reason)):
        read_submission(path, max_bytes=1 << 20)


def test_size_limit_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.ipynb"
    path.write_bytes(b" " * 2048)
    with pytest.raises(InvalidSubmission, match="the file is 2 KiB, over the 1 KiB limit"):
        read_submission(path, max_bytes=1024)


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"kernelspec": {"name": "llmcourse-venv", "language": "python"}},
        {"kernelspec": {"name": "python3"}},
    ],
)
def test_python_kernels_of_any_name_are_accepted(tmp_path, metadata):
    path = tmp_path / "sub.ipynb"
    path.write_text(json.dumps(notebook(("f", "pass"), **metadata)))
    assert read_submission(path, 1 << 20)["cells"]


def test_matching_by_answer_ids_then_by_file_name():
    one = exercise(("f", "def f(): ..."), ("g", "def g(): ..."))
    two = copy.deepcopy(one)
    two.name = "other"
    two.answers = {"x": ""}
    exercises = {"ch01_demo": one, "ch02_other": two}
    assert match_exercise(notebook(("g", "")), "anything.ipynb", exercises) is one
    assert match_exercise(notebook(), "alice_ch02_other.ipynb", exercises) is two
    with pytest.raises(InvalidSubmission, match="cannot tell which exercise"):
        match_exercise(notebook(), "alice.ipynb", exercises)
