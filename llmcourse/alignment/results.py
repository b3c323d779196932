"""The results of Chapter 12's recipe, shipped with the package.

``recipes/rlhf_small.py`` made the preference data, trained the reward model and the
aligned policies, and wrote ``results/``: the reward model (``reward_model/model.pt``
in bfloat16, with ``card.json``: its SHA-256, settings and held-out metrics) and
``runs.json`` (every curve and table the chapter plots). :func:`load_rlhf_results`
reads the runs, :func:`load_reward_model` the reward model, after checking its
checksum. ``tests/test_rlhf_results.py`` checks both against fresh samples.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from llmcourse.alignment.reward_model import ScalarModel
from llmcourse.models.gpt import GPT
from llmcourse.models.pretrained import sha256
from llmcourse.modules.transformer import TransformerConfig

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RECIPE = "recipes/rlhf_small.py"


def _folder(directory: str | os.PathLike | None) -> Path:
    folder = RESULTS_DIR if directory is None else Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"no RLHF results at {str(folder)!r}; run `python {RECIPE}`")
    return folder


def load_rlhf_results(directory: str | os.PathLike | None = None) -> dict:
    """The recipe's ``runs.json``: ``settings``, ``preferences``, ``reward_model``
    (metrics and loss curve), ``runs`` (each policy's evaluations and step statistics)
    and ``best_of_n``. ``directory``: another results folder (the recipe's ``--out``)."""
    path = _folder(directory) / "runs.json"
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} is missing; run `python {RECIPE}`")
    results = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(results, dict) or results.get("format") != 1 or "runs" not in results:
        raise ValueError(f"{str(path)!r} is not an RLHF results file of format 1")
    return results


def reward_model_card(directory: str | os.PathLike | None = None) -> dict:
    """The reward model's card: ``config``, ``metrics``, ``files`` (size and SHA-256)."""
    path = _folder(directory) / "reward_model" / "card.json"
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} is missing; run `python {RECIPE}`")
    return json.loads(path.read_text(encoding="utf-8"))


def load_reward_model(directory: str | os.PathLike | None = None) -> ScalarModel:
    """The shipped reward model, in float32 and eval mode, after checking its SHA-256."""
    card = reward_model_card(directory)
    path = _folder(directory) / "reward_model" / "model.pt"
    if not path.is_file() or sha256(path) != card["files"]["model.pt"]["sha256"]:
        raise ValueError(
            f"{str(path)!r} is missing, corrupt or not the card's (SHA-256 differs); "
            f"reinstall llmcourse or rerun `python {RECIPE}`"
        )
    model = ScalarModel(GPT(TransformerConfig(**card["config"])))
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict({name: value.float() for name, value in state.items()})
    return model.eval()
