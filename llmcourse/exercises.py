"""Student exercises, generated from the solution notebooks (the single source).

A solution notebook ``solutions/chNN_name.ipynb`` marks each graded answer with a
code cell tagged ``answer:<id>`` whose reference code sits between the lines
``### BEGIN SOLUTION`` and ``### END SOLUTION``. The exercise notebook
``exercises/chNN_name.ipynb`` is the same notebook with every such region replaced
by ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` (indented like the
region) and every output cleared. Nothing else differs, so editing the solution and
regenerating is the only way to change an exercise.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbformat import NotebookNode

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
ANSWER_TAG = "answer:"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")


def answer_id(cell: NotebookNode) -> str | None:
    """The ``<id>`` of a cell tagged ``answer:<id>``, or None for any other cell."""
    ids = [
        t[len(ANSWER_TAG) :]
        for t in cell.get("metadata", {}).get("tags", [])
        if t.startswith(ANSWER_TAG)
    ]
    if len(ids) > 1:
        raise ValueError(f"a cell has several answer tags: {ids}")
    return ids[0] if ids else None


def strip_solution(source: str) -> str:
    """Replace every BEGIN/END SOLUTION region of a cell's source by the stub.

    Raises:
        ValueError: a region that is not closed, an END without a BEGIN, or no region.
    """
    out: list[str] = []
    inside = False
    regions = 0
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"line {number}: {BEGIN!r} inside another solution region")
            inside, regions = True, regions + 1
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in STUB)
        elif stripped == END:
            if not inside:
                raise ValueError(f"line {number}: {END!r} without a matching {BEGIN!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} is never closed by {END!r}")
    if regions == 0:
        raise ValueError(f"no {BEGIN!r} ... {END!r} region")
    return "\n".join(out)


def make_exercise(solution: NotebookNode) -> NotebookNode:
    """The exercise notebook for a solution notebook (a new object; the input is untouched).

    Raises:
        ValueError: an answer cell that is not code or has no solution region, two
            answer cells with one id, or solution markers outside an answer cell.
    """
    exercise = copy.deepcopy(solution)
    seen: set[str] = set()
    for index, cell in enumerate(exercise.cells):
        ident = answer_id(cell)
        where = f"cell {index}" + (f" (answer:{ident})" if ident else "")
        if ident is None:
            if BEGIN in cell.source or END in cell.source:
                raise ValueError(f"{where}: solution markers in a cell without an answer: tag")
        else:
            if cell.cell_type != "code":
                raise ValueError(f"{where}: answer cells must be code cells")
            if ident in seen:
                raise ValueError(f"{where}: the answer id {ident!r} is used twice")
            seen.add(ident)
            try:
                cell.source = strip_solution(cell.source)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    if not seen:
        raise ValueError("the notebook has no answer cells (code cells tagged 'answer:<id>')")
    return exercise


def exercise_text(solution_path: Path) -> str:
    """The exact file contents of the exercise generated from a solution notebook."""
    solution = nbformat.read(solution_path, as_version=4)
    return nbformat.writes(make_exercise(solution)) + "\n"


def generate(solutions: Path, exercises: Path, check: bool = False) -> list[Path]:
    """Write ``exercises/X.ipynb`` for every ``solutions/X.ipynb``.

    Args:
        solutions: the folder of solution notebooks.
        exercises: the folder to write exercise notebooks into.
        check: write nothing; return the exercise files that are missing or stale.

    Returns:
        The files written (or, with ``check``, the stale ones).
    """
    solution_paths = sorted(Path(solutions).glob("*.ipynb"))
    if not solution_paths:
        raise FileNotFoundError(f"no solution notebooks in {solutions}")
    changed = []
    for path in solution_paths:
        target = Path(exercises) / path.name
        text = exercise_text(path)
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        changed.append(target)
        if not check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    return changed
