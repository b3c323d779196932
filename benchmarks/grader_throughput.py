"""Grader throughput: the overhead over executing the same notebook with bare nbclient,
and submissions per hour with 1 and 2 workers, against the targets of issue #11.

Usage: ``.venv/bin/python benchmarks/grader_throughput.py [--notebook PATH] [-n N]``

Grades N copies of a notebook (by default Chapter 6's solution, which passes every
test) with ``grade_batch``, once with one worker and once with two, and executes it
with nbclient (one kernel, every cell but the self-check) as the baseline. The grader
does more than execute: a sandboxed kernel per answer (forked from a warm fork server),
the grading tests and their reference computations in the worker, and the per-call
round trips; the ratio says what that costs. The batches include starting the workers
and their fork servers, as a real batch does.

Targets: at most 1.5x bare nbclient (1 worker) and, for Chapter 6, at least 2,000
submissions per hour with 2 workers on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from llmcourse.grading.batch import grade_batch
from llmcourse.grading.grade import Options

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5
TARGET_PER_HOUR = 2000


def bare_nbclient(path: Path, n: int) -> float:
    """Seconds per execution of ``path`` with nbclient (kernel start included)."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells = [c for c in notebook.cells if "self-check" not in c.metadata.get("tags", [])]
    start = time.perf_counter()
    for _ in range(n):
        with tempfile.TemporaryDirectory() as workdir:
            copy = nbformat.from_dict(notebook)
            km = KernelManager(transport="ipc", ip=str(Path(workdir) / "ipc"))  # as the grader's
            client = NotebookClient(copy, km=km, resources={"metadata": {"path": workdir}})
            try:
                client.execute()
            finally:
                km.shutdown_kernel(now=True)
    return (time.perf_counter() - start) / n


def graded(path: Path, n: int, workers: int) -> float:
    """Seconds per submission when grading ``n`` copies of ``path`` with ``workers``."""
    with tempfile.TemporaryDirectory() as root:
        submissions, out = Path(root) / "submissions", Path(root) / "out"
        submissions.mkdir()
        for i in range(n):
            shutil.copy(path, submissions / f"student{i:03d}.ipynb")
        paths = sorted(submissions.glob("*.ipynb"))
        start = time.perf_counter()
        results = grade_batch(paths, out, Options(), workers=workers, progress=False)
        seconds = (time.perf_counter() - start) / n
    bad = [r["student"] for r in results if r["status"] != "graded" or r["score"] != r["max_score"]]
    if bad:
        sys.exit(f"grading failed for {bad}: see the logs")
    return seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ROOT / "solutions" / "ch06_transformer.ipynb"
    parser.add_argument("--notebook", type=Path, default=default)
    parser.add_argument("-n", type=int, default=24, help="submissions per batch")
    parser.add_argument("--bare", type=int, default=6, help="bare nbclient executions")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    print(f"{args.notebook.name}: batches of {args.n} submissions, {os.cpu_count()} CPUs")
    bare = bare_nbclient(args.notebook, args.bare)
    print(f"bare nbclient execution: {bare:5.2f} s per notebook")
    one = graded(args.notebook, args.n, workers=1)
    print(
        f"grader, 1 worker:  {one:5.2f} s per submission = {3600 / one:6.0f} submissions/hour; "
        f"ratio to bare nbclient: {one / bare:.2f}x (target: at most {TARGET_RATIO}x)"
    )
    two = graded(args.notebook, args.n, workers=2)
    print(
        f"grader, 2 workers: {two:5.2f} s per submission = {3600 / two:6.0f} submissions/hour "
        f"(target for ch06: at least {TARGET_PER_HOUR}); speed-up over 1 worker: {one / two:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
