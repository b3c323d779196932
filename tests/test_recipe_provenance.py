"""recipes/provenance.py: the git revision every recipe writes into its card."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load():
    spec = importlib.util.spec_from_file_location("provenance", ROOT / "recipes" / "provenance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_revision_names_the_checked_out_commit():
    revision = load().git_revision()
    if (ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}(\+uncommitted)?", revision), revision
    else:
        assert revision == "unknown"


def test_outside_a_checkout_the_revision_is_unknown(tmp_path, monkeypatch):
    provenance = load()
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert provenance.git_revision() == "unknown"
