"""recipes/rlhf_small.py runs end to end: a smoke run writes every file of the shipped shape.

The shipped run's results are checked against fresh samples in test_rlhf_results.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "rlhf_small.py"


def test_a_smoke_run_writes_the_runs_and_a_loadable_reward_model(tmp_path):
    command = [sys.executable, str(RECIPE), "--tiny", "--out", str(tmp_path)]
    subprocess.run([*command, "--no-progress", "--threads", "1"], check=True, timeout=600)
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert runs["settings"]["name"] == "tiny" and runs["recipe"] == "recipes/rlhf_small.py"
    assert set(runs["runs"]) == {
        "ppo beta=0.02",
        "reinforce beta=0.02",
        "grpo beta=0.02 (verifiable)",
        "dpo",
    }
    for run in runs["runs"].values():
        assert [p["step"] for p in run["curve"]][0] == 0
        assert {"gold", "accuracy", "proxy", "kl", "length"} <= set(run["curve"][-1])
    assert [b["n"] for b in runs["best_of_n"]] == [1, 2]
    card = json.loads((tmp_path / "reward_model" / "card.json").read_text())
    assert card["metrics"] == runs["reward_model"]["metrics"]
    state = torch.load(tmp_path / "reward_model" / "model.pt", weights_only=True)
    assert "head.weight" in state and all(v.dtype == torch.bfloat16 for v in state.values())
