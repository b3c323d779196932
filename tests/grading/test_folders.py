"""The grader's temporary folders are removed once their process is gone."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from llmcourse.grading.folders import (
    grader_folders,
    new_folder,
    remove_folders_of,
    remove_stale_folders,
)


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_folder_is_named_after_its_process():
    folder = new_folder()
    try:
        assert grader_folders()[folder] == os.getpid()
    finally:
        folder.rmdir()


def test_folders_of_a_killed_grader_are_removed_by_the_next_one():
    """A self-check killed by its timeout could not remove its folder (with its runtime
    folders, without namespaces): the next fork server removes it; a running process's
    folder, and what is not a grader's, stay."""
    stale = Path(tempfile.mkdtemp(prefix=f"llmcourse-{dead_pid()}-"))
    (stale / "k1").mkdir()
    (stale / "k1" / "kernel.json").write_text("{}")
    alive, other = new_folder(), Path(tempfile.mkdtemp(prefix="llmcourse-notes-"))
    try:
        remove_stale_folders()
        assert not stale.exists()
        assert alive.is_dir() and other.is_dir()
        remove_folders_of(os.getpid())
        assert not alive.exists() and other.is_dir()
    finally:
        for path in (stale, alive, other):
            shutil.rmtree(path, ignore_errors=True)
