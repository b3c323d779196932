"""The student's self-check, for the last cell of an exercise notebook.

``self_check("ch01_ngrams")`` grades the *saved* file ``ch01_ngrams.ipynb`` (next to
the notebook) with the visible tests, in separate sandboxed kernels, exactly as
``llmcourse check`` does; the live kernel that calls it is not involved, so what is
checked is what would be submitted. It prints the result and never raises, so an
untouched exercise still runs to the end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TIMEOUT_S = 900


def self_check(name: str, path: str | Path | None = None) -> None:
    """Check the saved notebook ``name`` (``<name>.ipynb`` in the working directory).

    Args:
        name: the exercise, e.g. ``"ch01_ngrams"``.
        path: the notebook file, if it is not ``<name>.ipynb`` in the working directory.
    """
    notebook = Path(path) if path is not None else Path(f"{name}.ipynb")
    if not notebook.is_file():
        print(
            f"Cannot find {notebook} in {Path.cwd()}. Save the notebook first, then run this "
            f"cell again (or run `llmcourse check path/to/{name}.ipynb` in a terminal)."
        )
        return
    command = [sys.executable, "-m", "llmcourse.cli", "check", str(notebook), "--exercise", name]
    print(f"Checking the saved file {notebook.name} (save first to check your latest changes) ...")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as err:
        print(f"The self-check could not run: {err}")
        return
    print(done.stdout.rstrip())
    if done.returncode not in (0, 1):
        print(f"The self-check failed:\n{done.stderr.strip()[-2000:]}")
