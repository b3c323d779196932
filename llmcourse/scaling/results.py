"""The results of the course's scaling sweep, shipped with the package.

``recipes/scaling_sweep.py`` trained the runs (each record's ``seconds`` is its time on
one CPU core) and wrote ``results/sweep.json``; :func:`load_sweep` reads it.
Each run is a record of :func:`llmcourse.scaling.sweep.train_run` plus its ``group``
(``"isoflop lexicon 1e+12"``, ``"fixed-D lexicon"``, ``"fixed-D grammar"``,
``"isoflop prose 3e+11"``, ``"data-limited prose"``).
``tests/test_scaling_sweep.py`` reruns the smallest runs and checks that they
reproduce the shipped losses, so the file cannot drift from the code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "sweep.json"


def load_sweep(path: str | os.PathLike | None = None) -> dict:
    """The sweep's results: ``{"runs": [...], "settings": ..., "git_revision": ...}``.

    Args:
        path: another results file (e.g. the ``--out`` of the recipe); None reads the
            shipped one.
    """
    path = RESULTS_FILE if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no sweep results at {str(path)!r}; run `python recipes/scaling_sweep.py`"
        )
    results = json.loads(path.read_text())
    if not isinstance(results, dict) or results.get("format") != 1 or "runs" not in results:
        raise ValueError(f"{str(path)!r} is not a sweep results file of format 1")
    return results


def runs_of(results: dict, group: str) -> list[dict]:
    """The runs of one group, in the order of the grid; a clear error for an unknown group."""
    runs = [run for run in results["runs"] if run["group"] == group]
    if not runs:
        groups = sorted({run["group"] for run in results["runs"]})
        raise ValueError(f"no runs in group {group!r}; the groups are {groups}")
    return runs
