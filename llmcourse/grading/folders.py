"""The grader's temporary folders: named after the process that made them, removed
once it is gone.

A fork server's folder (:class:`llmcourse.grading.spawner.ForkServer`) and a sandbox
probe's are ``llmcourse-<pid>-<random>`` in the temporary folder, where ``pid`` is the
grading process. With namespaces it is an empty mount point on the host (the kernels'
files live in the fork server's private file system in memory); without, it holds the
kernels' runtime folders. A process removes its folders when it ends normally; the
batch removes those of a worker it killed or that crashed (:func:`remove_folders_of`),
and every new fork server removes those of any grading process that no longer runs
(:func:`remove_stale_folders`), such as a self-check that was killed.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

NAME = re.compile(r"llmcourse-(\d+)-[^/]+")


def new_folder() -> Path:
    """A new, private folder of this process."""
    return Path(tempfile.mkdtemp(prefix=f"llmcourse-{os.getpid()}-"))


def grader_folders() -> dict[Path, int]:
    """Every folder of a grading process on this machine -> that process's id."""
    found = {}
    for entry in os.scandir(tempfile.gettempdir()):
        match = NAME.fullmatch(entry.name)
        if match and entry.is_dir(follow_symlinks=False):
            found[Path(entry.path)] = int(match[1])
    return found


def remove_folders_of(pid: int) -> None:
    """Remove the folders of grading process ``pid``, which has ended."""
    for path, owner in grader_folders().items():
        if owner == pid:
            shutil.rmtree(path, ignore_errors=True)


def stale_folders() -> list[Path]:
    """The folders of grading processes that no longer run."""
    return sorted(path for path, owner in grader_folders().items() if not _running(owner))


def remove_stale_folders() -> None:
    """Remove the folders of every grading process that no longer runs."""
    for path in stale_folders():
        shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
