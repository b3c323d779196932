"""Execution time of every chapter and solution notebook against the 60 s budget.

Usage: ``.venv/bin/python benchmarks/notebook_times.py [NOTEBOOK ...]``

Prints one line per notebook: seconds, the ratio to the budget, and OVER when a
notebook exceeds it. Exits 1 if any does. Times include kernel start-up, as in the
book build.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

BUDGET_S = 60.0
ROOT = Path(__file__).resolve().parents[1]


def run(path: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        NotebookClient(notebook, timeout=600, resources={"metadata": {"path": workdir}}).execute()
        return time.perf_counter() - start


def main(paths: list[str]) -> int:
    os.environ.setdefault("PYTHONHASHSEED", "0")
    notebooks = [Path(p).resolve() for p in paths] or sorted(
        [*ROOT.glob("book/ch*.ipynb"), *ROOT.glob("solutions/*.ipynb")]
    )
    over = 0
    for path in notebooks:
        seconds = run(path)
        ratio = seconds / BUDGET_S
        over += ratio > 1
        flag = "  OVER" if ratio > 1 else ""
        print(f"{path.relative_to(ROOT)}: {seconds:6.1f} s = {ratio:4.2f} x budget{flag}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
