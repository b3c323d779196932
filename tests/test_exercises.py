"""The exercise pipeline: generation from solutions, staleness, and what students get."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from llmcourse import cli
from llmcourse.exercises import (
    BEGIN,
    END,
    answer_id,
    exercise_text,
    generate,
    make_exercise,
    strip_solution,
)

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def answer_cell(source: str, ident: str = "f") -> nbformat.NotebookNode:
    return new_code_cell(source, metadata={"tags": [f"answer:{ident}"]})


def test_strip_solution_keeps_signature_and_indentation():
    source = f"def f(x):\n    '''doc'''\n    {BEGIN}\n    y = x + 1\n    return y\n    {END}\n"
    assert strip_solution(source) == (
        "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    )


def test_strip_solution_replaces_every_region():
    source = f"{BEGIN}\na = 1\n{END}\nb = 2\n{BEGIN}\nc = 3\n{END}"
    assert strip_solution(source).count("raise NotImplementedError()") == 2
    assert "b = 2" in strip_solution(source) and "a = 1" not in strip_solution(source)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (f"{BEGIN}\nx = 1\n", "never closed"),
        (f"x = 1\n{END}\n", "without a matching"),
        (f"{BEGIN}\n{BEGIN}\n{END}\n", "inside another"),
        ("x = 1\n", "no '### BEGIN SOLUTION'"),
    ],
)
def test_strip_solution_rejects_malformed_regions(source, message):
    with pytest.raises(ValueError, match=message):
        strip_solution(source)


def test_make_exercise_clears_outputs_and_leaves_the_solution_untouched():
    solution = new_notebook(
        cells=[
            new_markdown_cell("# Title"),
            answer_cell(f"def f():\n    {BEGIN}\n    return 42\n    {END}"),
            new_code_cell(
                "print(f())",
                execution_count=3,
                outputs=[nbformat.v4.new_output("stream", text="42\n")],
            ),
        ]
    )
    before = nbformat.writes(solution)
    exercise = make_exercise(solution)
    assert nbformat.writes(solution) == before
    assert exercise.cells[0].source == "# Title"
    assert "return 42" not in exercise.cells[1].source
    assert exercise.cells[2].outputs == [] and exercise.cells[2].execution_count is None
    assert answer_id(exercise.cells[1]) == "f"


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ([new_code_cell("x = 1")], "no answer cells"),
        ([answer_cell(f"{BEGIN}\n{END}"), answer_cell(f"{BEGIN}\n{END}")], "used twice"),
        ([new_code_cell(f"{BEGIN}\nx = 1\n{END}")], "without an answer: tag"),
        ([new_markdown_cell("text", metadata={"tags": ["answer:f"]})], "must be code"),
        ([answer_cell("x = 1")], r"cell 0 \(answer:f\): no"),
    ],
)
def test_make_exercise_rejects_inconsistent_notebooks(cells, message):
    with pytest.raises(ValueError, match=message):
        make_exercise(new_notebook(cells=cells))


def test_generate_writes_then_reports_nothing_stale(tmp_path):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    notebook = new_notebook(cells=[answer_cell(f"{BEGIN}\nx = 1\n{END}")])
    nbformat.write(notebook, solutions / "ch99_demo.ipynb")
    assert generate(solutions, exercises, check=True) == [exercises / "ch99_demo.ipynb"]
    assert not (exercises / "ch99_demo.ipynb").exists()
    assert generate(solutions, exercises) == [exercises / "ch99_demo.ipynb"]
    assert generate(solutions, exercises, check=True) == []
    assert (
        cli.main(
            ["exercises", "--solutions", str(solutions), "--exercises", str(exercises), "--check"]
        )
        == 0
    )
    (exercises / "ch99_demo.ipynb").write_text("{}")
    assert (
        cli.main(
            ["exercises", "--solutions", str(solutions), "--exercises", str(exercises), "--check"]
        )
        == 1
    )


def test_cli_reports_a_missing_folder(tmp_path, capsys):
    assert cli.main(["exercises", "--solutions", str(tmp_path / "none")]) == 2
    assert "no solution notebooks" in capsys.readouterr().err


def test_there_are_solutions():
    assert SOLUTIONS, "solutions/ holds no notebooks"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_exercise_is_up_to_date(solution):
    exercise = ROOT / "exercises" / solution.name
    assert exercise.exists(), f"{exercise} is missing: run `make exercises`"
    assert exercise.read_text(encoding="utf-8") == exercise_text(solution), (
        f"{exercise} is stale: run `make exercises`"
    )


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_untouched_exercise_fails_only_with_not_implemented(solution, tmp_path):
    """Every cell runs; the only errors a student starts with are the stubs."""
    notebook = nbformat.read(ROOT / "exercises" / solution.name, as_version=4)
    NotebookClient(
        notebook, timeout=60, allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        (index, output.ename)
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    answers = [c for c in notebook.cells if answer_id(c)]
    assert errors, "an untouched exercise should raise NotImplementedError somewhere"
    assert {name for _, name in errors} == {"NotImplementedError"}, errors
    assert len(answers) >= 3
