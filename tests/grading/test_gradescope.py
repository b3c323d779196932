"""The Gradescope autograder: the zip's files, and run_autograder run here with paths overridden."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from grading_support import FIXTURES

from llmcourse.grading.gradescope import build_package


@pytest.fixture(scope="module")
def package(course, tmp_path_factory):
    target = tmp_path_factory.mktemp("package") / "ch98_tiny.zip"
    names = build_package("ch98_tiny", target, course)
    return target, names


def test_the_zip_has_what_gradescope_needs(package):
    target, names = package
    for name in [
        "setup.sh",
        "run_autograder",
        "requirements.txt",
        "pyproject.toml",
        "exercises/ch98_tiny.ipynb",
        "tests/test_ch98_tiny.py",
        "tests/conftest.py",
        "llmcourse/grading/forkserver.py",
        "llmcourse/cli.py",
    ]:
        assert name in names
    assert not any("__pycache__" in n for n in names)
    with zipfile.ZipFile(target) as archive:
        assert "### BEGIN SOLUTION" not in archive.read("exercises/ch98_tiny.ipynb").decode()
        assert archive.getinfo("run_autograder").external_attr >> 16 == 0o755
        assert "--exercise ch98_tiny" in archive.read("run_autograder").decode()


def test_unknown_exercises_are_refused(course, tmp_path):
    with pytest.raises(FileNotFoundError, match="no exercise 'ch00_none'"):
        build_package("ch00_none", tmp_path / "x.zip", course)


def run_autograder(root, submission: bytes | None) -> dict:
    (root / "submission").mkdir()
    if submission is not None:
        (root / "submission" / "my notebook.ipynb").write_bytes(submission)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(root / "run_autograder")], env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads((root / "results" / "results.json").read_text())


@pytest.fixture
def autograder(package, tmp_path):
    root = tmp_path / "autograder"
    with zipfile.ZipFile(package[0]) as archive:
        archive.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    return root


def test_run_autograder_writes_valid_results(autograder):
    results = run_autograder(autograder, (FIXTURES / "ch98_tiny.ipynb").read_bytes())
    assert results["score"] == 2
    assert results["visibility"] == "visible" and results["stdout_visibility"] == "hidden"
    assert [(t["max_score"], t["visibility"]) for t in results["tests"]] == [
        (1.0, "visible"),
        (1.0, "hidden"),
    ]


def test_run_autograder_without_a_notebook(autograder):
    results = run_autograder(autograder, None)
    assert results["score"] == 0 and "no .ipynb file" in results["output"]
