"""From a student's file to the code the grader runs: validation, matching, assembly.

Only the student's answer cells (code cells tagged ``answer:<id>``) are taken from a
submission; they are put into a pristine copy of the exercise notebook, so setup
cells always come from the exercise and extra or edited cells are ignored. Answers
are matched by tag, not position: reordered cells are fine; for a duplicated tag the
last cell counts; a missing tag, or a tagged cell that is no longer a code cell,
scores 0 with a message naming it.

What runs for each answer (the isolation unit, see :mod:`llmcourse.grading.session`)
is a *plan*: the exercise's setup cells and the answer's cell, plus the other answer
cells it uses (found by name, transitively), all in notebook order; after the cell of
a used answer that has a stand-in (see :mod:`llmcourse.grading.offlimits`), the
stand-in. A setup cell is a
code cell of the exercise that is not an answer, is not tagged ``self-check``, and uses
none of the functions or classes the answers define (nor anything computed from them);
so the cells that try an answer on an example, and the self-check, are not run.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import nbformat

from llmcourse.exercises import ANSWER_TAG, BEGIN, answer_id, make_exercise

SELF_CHECK_TAG = "self-check"


class InvalidSubmission(ValueError):
    """A file that cannot be graded; the message says why, for the student."""


@dataclass(frozen=True)
class Step:
    """One cell to run: ``label`` names it in feedback (``setup cell 3``, ``answer:f``);
    ``answer`` is the answer it is the cell of, ``stand_in`` the answer it stands in for
    (both None for a setup cell)."""

    label: str
    source: str
    answer: str | None = None
    stand_in: str | None = None


@dataclass
class Exercise:
    """A pristine exercise notebook, analysed.

    Attributes:
        name: the notebook's stem, e.g. ``ch01_ngrams``.
        answers: answer id -> the exercise's (stub) source, in notebook order.
        steps: the code cells the grader may run, in order: setup cells and answers.
    """

    name: str
    answers: dict[str, str]
    steps: list[Step]

    @classmethod
    def from_notebook(cls, name: str, notebook: nbformat.NotebookNode) -> Exercise:
        """Analyse an exercise notebook (or a solution: its answers become the stubs)."""
        if any(answer_id(c) for c in notebook.cells) and any(
            BEGIN in c.source for c in notebook.cells
        ):
            notebook = make_exercise(notebook)
        code = [(i, c) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
        answers = {answer_id(c): c.source for _, c in code if answer_id(c) is not None}
        # the names answers define (their functions and classes), then those of the cells
        # that use them (examples), are not available to setup cells
        examples = set().union(*(api_names(source) for source in answers.values()))
        setup_names: set[str] = set()
        steps: list[Step] = []
        for index, cell in code:
            ident = answer_id(cell)
            if ident is not None:
                steps.append(Step(f"answer:{ident}", cell.source, ident))
            elif SELF_CHECK_TAG in cell.metadata.get("tags", []):
                continue
            elif used_names(cell.source) & examples:
                examples |= defined_names(cell.source) - setup_names
            else:
                steps.append(Step(f"setup cell {index}", cell.source))
                setup_names |= defined_names(cell.source)
        if not answers:
            raise ValueError(f"{name}: no answer cells (code cells tagged 'answer:<id>')")
        return cls(name, answers, steps)

    @classmethod
    def load(cls, path: Path) -> Exercise:
        """Read and analyse ``path`` (an exercise, or a solution notebook)."""
        return cls.from_notebook(path.stem, nbformat.read(path, as_version=4))


@dataclass
class Assembled:
    """A submission's answers placed into its exercise.

    Attributes:
        exercise: the exercise it answers.
        answers: answer id -> the student's source, for the answers found.
        problems: answer id -> why it cannot be graded (missing, not a code cell).
        unchanged: answers still exactly as handed out (they only raise
            NotImplementedError, so they are not run).
        notes: remarks for the student that cost nothing (duplicates, unknown tags).
    """

    exercise: Exercise
    answers: dict[str, str]
    problems: dict[str, str] = field(default_factory=dict)
    unchanged: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def plan(
        self, answer: str, skip: Collection[str] = (), stand_ins: Mapping[str, str] | None = None
    ) -> list[Step]:
        """The cells to run for ``answer``: setup, the answer and what it uses.

        Args:
            answer: the answer id.
            skip: answer ids not to run (they hung or crashed a kernel before).
            stand_ins: answer id -> trusted code defining its names with a reference
                implementation; run right after that answer's cell (in its place if it
                is skipped) when ``answer`` uses it, never for ``answer`` itself.
        """
        needed = self.dependencies(answer) - set(skip)
        replaced = self.stand_in_dependencies(answer, stand_ins or {})
        plan = []
        for step in self.exercise.steps:
            if step.answer is None:
                plan.append(step)
                continue
            if step.answer in needed:
                plan.append(Step(step.label, self.answers[step.answer], step.answer))
            if step.answer in replaced:
                label = f"the stand-in for answer:{step.answer}"
                plan.append(Step(label, (stand_ins or {})[step.answer], stand_in=step.answer))
        return plan

    def stand_in_dependencies(self, answer: str, stand_ins: Mapping[str, str]) -> set[str]:
        """The answers with a stand-in that ``answer`` uses, itself or through the answers
        it uses (by the names their exercise cells define, so that a missing or
        unchanged answer counts too)."""
        if answer not in self.answers:
            return set()
        closure = self.dependencies(answer)
        uses = set().union(*(used_names(self.answers[a]) for a in closure))
        return {
            other
            for other in stand_ins
            if other != answer and other in self.exercise.answers
            and api_names(self.exercise.answers[other]) & uses
        }  # fmt: skip

    def dependencies(self, answer: str) -> set[str]:
        """``answer`` and the answers whose names it uses, transitively."""
        setup = set().union(*(defined_names(s.source) for s in self.exercise.steps if not s.answer))
        defines = {a: defined_names(src) - setup for a, src in self.answers.items()}
        needed, todo = set(), [answer]
        while todo:
            current = todo.pop()
            if current in needed or current not in self.answers:
                continue
            needed.add(current)
            uses = used_names(self.answers[current])
            todo += [other for other, names in defines.items() if names & uses]
        return needed


# -- names a cell defines and uses ------------------------------------------------------
@cache
def _transformer() -> Any:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def _parse(source: str) -> ast.Module | None:
    """The syntax tree of a cell, after IPython's transformations (magics); None if invalid."""
    try:
        return ast.parse(_transformer().transform_cell(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


@cache
def api_names(source: str) -> frozenset[str]:
    """The functions and classes a cell defines at module level."""
    tree = _parse(source)
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return frozenset(n.name for n in (tree.body if tree else []) if isinstance(n, defs))


@cache
def defined_names(source: str) -> frozenset[str]:
    """Names a cell binds at module level (and names it declares ``global``)."""
    tree = _parse(source)
    if tree is None:
        return frozenset()
    names: set[str] = set()
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.Global):
            names.update(node.names)
        if top:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child, top and not isinstance(node, scopes))

    visit(tree, True)
    return frozenset(names)


@cache
def used_names(source: str) -> frozenset[str]:
    """Every name a cell reads, anywhere (inside functions too)."""
    tree = _parse(source)
    if tree is None:
        return frozenset()
    loads = (
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    )
    return frozenset(loads)


# -- reading a submission -----------------------------------------------------------------
def read_submission(path: Path, max_bytes: int) -> dict[str, Any]:
    """The raw notebook JSON of a submission file, checked just enough to be graded.

    Raises:
        InvalidSubmission: too large, empty, not JSON, not nbformat 4, malformed cells,
            or written for a kernel that is not Python.
    """
    size = path.stat().st_size
    if size > max_bytes:
        raise InvalidSubmission(
            f"the file is {_size(size)}, over the {_size(max_bytes)} limit "
            "(clear the outputs: Edit > Clear Outputs of All Cells, then save)"
        )
    if size == 0:
        raise InvalidSubmission("the file is empty")
    try:
        notebook = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as err:
        raise InvalidSubmission(f"the file is not a notebook (invalid JSON: {err})") from None
    if type(notebook) is not dict or "cells" not in notebook and "worksheets" not in notebook:
        raise InvalidSubmission("the file is JSON but not a Jupyter notebook")
    if notebook.get("nbformat") != 4:
        raise InvalidSubmission(
            f"the notebook has format version {notebook.get('nbformat')!r}; the grader reads "
            "version 4 (save it with JupyterLab or Jupyter Notebook 5 or later)"
        )
    cells = notebook.get("cells")
    if type(cells) is not list or any(not _is_cell(c) for c in cells):
        raise InvalidSubmission("the notebook's cells are malformed")
    _check_kernel(notebook.get("metadata"))
    return notebook


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{round(n / scale, 1):g} {unit}"
    return f"{n} bytes"


def _is_cell(cell: Any) -> bool:
    if type(cell) is not dict or type(cell.get("cell_type")) is not str:
        return False
    source = cell.get("source", "")
    if not (type(source) is str or type(source) is list and all(type(s) is str for s in source)):
        return False
    metadata = cell.get("metadata", {})
    tags = metadata.get("tags", []) if type(metadata) is dict else None
    return type(tags) is list and all(type(t) is str for t in tags)


def _check_kernel(metadata: Any) -> None:
    """A notebook must be for Python: by its stated language, else by its kernel's name."""
    metadata = metadata if type(metadata) is dict else {}
    spec = metadata.get("kernelspec") if type(metadata.get("kernelspec")) is dict else {}
    info = metadata.get("language_info") if type(metadata.get("language_info")) is dict else {}
    name = str(spec.get("name", "python3"))
    language = spec.get("language") or info.get("name")
    python = "python" in name.lower() if language is None else str(language).lower() == "python"
    if not python:
        raise InvalidSubmission(
            f"the notebook was written for the kernel {name!r} ({language or 'unknown language'}); "
            "this exercise needs a Python 3 kernel"
        )


def _normalized(source: str) -> list[str]:
    return [line.rstrip() for line in source.strip().splitlines()]


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def answer_ids(notebook: dict[str, Any]) -> set[str]:
    """The answer ids tagged in a raw notebook."""
    return {
        tag[len(ANSWER_TAG) :]
        for cell in notebook["cells"]
        for tag in (cell.get("metadata") or {}).get("tags", [])
        if tag.startswith(ANSWER_TAG)
    }


def match_exercise(
    notebook: dict[str, Any], filename: str, exercises: dict[str, Exercise]
) -> Exercise:
    """The exercise a submission answers: the one sharing the most answer ids with it,
    else the one whose name is in the file name.

    Raises:
        InvalidSubmission: no exercise, or several equally good ones.
    """
    ids = answer_ids(notebook)
    overlap = {name: len(ids & set(ex.answers)) for name, ex in exercises.items()}
    best = max(overlap.values(), default=0)
    winners = [name for name, count in overlap.items() if count == best and count > 0]
    if len(winners) == 1:
        return exercises[winners[0]]
    by_name = [name for name in exercises if name in filename]
    if len(by_name) == 1 and (not winners or by_name[0] in winners):
        return exercises[by_name[0]]
    known = ", ".join(sorted(exercises)) or "none"
    raise InvalidSubmission(
        f"cannot tell which exercise this is (its answer tags: {sorted(ids) or 'none'}; "
        f"exercises: {known}); name the file after the exercise or keep its tagged cells"
    )


def assemble(notebook: dict[str, Any], exercise: Exercise) -> Assembled:
    """Take the submission's answer cells into ``exercise``."""
    found: dict[str, list[dict[str, Any]]] = {}
    for cell in notebook["cells"]:
        for tag in (cell.get("metadata") or {}).get("tags", []):
            if tag.startswith(ANSWER_TAG):
                found.setdefault(tag[len(ANSWER_TAG) :], []).append(cell)
    assembled = Assembled(exercise, {})
    for ident in exercise.answers:
        cells = found.get(ident, [])
        if not cells:
            assembled.problems[ident] = (
                f"the notebook has no cell tagged answer:{ident} "
                "(was it deleted, or its tag removed?)"
            )
            continue
        if len(cells) > 1:
            assembled.notes.append(
                f"{len(cells)} cells are tagged answer:{ident}; the last one was graded"
            )
        cell = cells[-1]
        if cell["cell_type"] != "code":
            assembled.problems[ident] = (
                f"the cell tagged answer:{ident} is a {cell['cell_type']} cell, not code"
            )
            continue
        assembled.answers[ident] = _source(cell)
        if _normalized(assembled.answers[ident]) == _normalized(exercise.answers[ident]):
            assembled.unchanged.add(ident)
    unknown = sorted(set(found) - set(exercise.answers))
    if unknown:
        assembled.notes.append(
            f"cells tagged {', '.join(f'answer:{u}' for u in unknown)} "
            f"are not part of {exercise.name}; ignored"
        )
    return assembled
