"""Gradescope: build an autograder zip for one exercise, and the entry point it runs.

The zip holds ``setup.sh`` (Gradescope runs it once, as root, to build the image: a
Python 3.11 virtual environment with the pinned requirements and this package),
``run_autograder`` (run for every submission), the package source, the pristine
exercise and its grading tests. ``run_autograder`` calls :func:`run`, which grades the
notebook in ``/autograder/submission`` through the same batch path as
``llmcourse grade`` (one worker) and writes ``/autograder/results/results.json``.
For a trial run elsewhere, set ``AUTOGRADER_ROOT`` (instead of ``/autograder``) and
``PYTHON`` (the interpreter with ``llmcourse`` installed).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat

import llmcourse
from llmcourse.exercises import BEGIN, make_exercise
from llmcourse.grading import report
from llmcourse.grading.batch import grade_batch
from llmcourse.grading.grade import REPO, Course, Options
from llmcourse.grading.notebook import Exercise

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, to build the autograder image.
set -euo pipefail
cd /autograder/source
apt-get update
apt-get install -y --no-install-recommends python3.11 python3.11-venv
python3.11 -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet -r requirements.txt
/autograder/venv/bin/pip install --quiet --no-deps .
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for each submission. AUTOGRADER_ROOT and PYTHON override the
# paths for a trial run outside Gradescope.
set -euo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{PYTHON:-$ROOT/venv/bin/python}}"
exec "$PYTHON" -m llmcourse.grading.gradescope --root "$ROOT" --exercise {name}
"""


VISIBILITY = {"visibility": "visible", "stdout_visibility": "hidden"}


def build_package(name: str, target: Path, course: Course | None = None) -> list[str]:
    """Write the autograder zip for exercise ``name`` to ``target``; returns its file names.

    Raises:
        FileNotFoundError: no such exercise, or no grading tests for it.
    """
    course = course or Course.default()
    if name not in course.names():
        raise FileNotFoundError(f"no exercise {name!r} with grading tests (have: {course.names()})")
    notebook = nbformat.read(course.exercises / f"{name}.ipynb", as_version=4)
    Exercise.from_notebook(name, notebook)  # fails early on an inconsistent exercise
    if any(BEGIN in cell.source for cell in notebook.cells):
        notebook = make_exercise(notebook)
    package = Path(llmcourse.__file__).resolve().parent
    files = {
        "setup.sh": SETUP_SH,
        "run_autograder": RUN_AUTOGRADER.format(name=name),
        f"exercises/{name}.ipynb": nbformat.writes(notebook) + "\n",
        f"tests/test_{name}.py": course.tests_file(name).read_text(encoding="utf-8"),
        "tests/conftest.py": (course.tests / "conftest.py").read_text(encoding="utf-8"),
    }
    for extra in ("requirements.txt", "pyproject.toml", "README.md"):
        files[extra] = (REPO / extra).read_text(encoding="utf-8")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, text in files.items():
            info = zipfile.ZipInfo(arcname)
            info.external_attr = (
                0o755 if arcname in ("setup.sh", "run_autograder") else 0o644
            ) << 16
            archive.writestr(info, text)
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, f"llmcourse/{path.relative_to(package)}")
        return archive.namelist()


def run(root: Path, name: str) -> int:
    """Grade the notebook in ``root/submission`` as exercise ``name`` (on Gradescope)."""
    source, results = root / "source", root / "results"
    results.mkdir(parents=True, exist_ok=True)
    notebooks = sorted((root / "submission").rglob("*.ipynb"))
    notebooks = [p for p in notebooks if ".ipynb_checkpoints" not in p.parts]
    preferred = [p for p in notebooks if p.stem == name] or notebooks
    options = Options(course=Course(source / "exercises", source / "tests"), exercise=name)
    with tempfile.TemporaryDirectory(prefix="llmcourse-gradescope-") as out:
        if not preferred:
            message = "The submission has no .ipynb file: upload your saved notebook."
            empty = {"score": 0, "output": message, "tests": [], **VISIBILITY}
            report.write_json(empty, results / "results.json")
            return 0
        graded = grade_batch(preferred[:1], Path(out), options, progress=False)[0]
        shutil.copyfile(
            Path(out) / "gradescope" / graded["student"] / "results.json", results / "results.json"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Gradescope entry point of the llmcourse grader.")
    parser.add_argument("--root", type=Path, default=Path("/autograder"))
    parser.add_argument("--exercise", required=True)
    args = parser.parse_args(argv)
    return run(args.root, args.exercise)


if __name__ == "__main__":
    sys.exit(main())
