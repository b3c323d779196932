"""recipes/objectives_small.py runs end to end: a smoke run writes bodies that load.

The shipped run is checked in test_objective_bodies.py."""

import subprocess
import sys
from pathlib import Path

from llmcourse.models.objective_bodies import KINDS, load_objective_model, objectives_card

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "objectives_small.py"


def test_a_smoke_run_writes_loadable_bodies_and_the_table(tmp_path):
    command = [sys.executable, str(RECIPE), "--tiny", "--out", str(tmp_path), "--no-progress"]
    subprocess.run([*command, "--threads", "1"], check=True, timeout=600)
    card = objectives_card(tmp_path)
    assert card["settings"]["name"] == "tiny" and card["recipe"] == "recipes/objectives_small.py"
    for kind in KINDS:
        load_objective_model(kind, tmp_path)
    rows = card["fine_tuning"]["results"]
    assert {r["body"] for r in rows} == {*KINDS, "random"}
    assert all(0.0 <= s <= 1.0 for r in rows for s in r["scores"])
