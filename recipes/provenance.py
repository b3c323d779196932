"""What every recipe records about the code it ran: the git revision.

A recipe runs as a script (``python recipes/<name>.py``), so its folder is on
``sys.path`` and it imports this module as ``from provenance import git_revision``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git_revision(*paths: str) -> str:
    """The commit the recipe runs from, with ``+uncommitted`` when tracked files under
    ``paths`` (relative to the repository; none: the whole tree) have changes, and
    ``"unknown"`` outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *paths)
        return git("rev-parse", "HEAD") + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
