"""Chapter 12's shipped results: the reward model and the runs of recipes/rlhf_small.py.

The reward model must do on fresh samples what its card says it did on the held-out
pairs (prefer the reply the gold reward prefers, better than chance). That the recipe
still runs and writes files of this shape is test_rlhf_recipe.py's smoke run.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from llmcourse.alignment import reward_fn, sample_rollout
from llmcourse.alignment.gold import GoldReward
from llmcourse.alignment.prompts import chat_prompts, task_examples
from llmcourse.alignment.results import (
    RESULTS_DIR,
    load_reward_model,
    load_rlhf_results,
    reward_model_card,
)
from llmcourse.models import load_pretrained
from llmcourse.models.pretrained import sha256


@pytest.fixture(scope="module")
def results():
    return load_rlhf_results()


def test_the_shipped_results_are_complete(results):
    settings = results["settings"]
    assert results["git_revision"] != "unknown"
    assert results["preferences"]["pairs"] == settings["pairs"]
    metrics = results["reward_model"]["metrics"]
    assert metrics == reward_model_card()["metrics"]
    assert 0.5 < metrics["accuracy_gold"] <= 1 and 0.5 <= metrics["noise_ceiling"] <= 1
    names = {name.split()[0] for name in results["runs"]}
    assert {"ppo", "reinforce", "grpo", "dpo"} <= names
    for name, run in results["runs"].items():
        curve = run["curve"]
        assert curve[0]["step"] == 0 and len(curve) >= 2, name
        for point in curve:
            assert {"gold", "proxy", "accuracy", "kl", "length"} <= set(point), name
            assert -1 <= point["gold"] <= 1 and 0 <= point["accuracy"] <= 1
    start = [run["curve"][0] for run in results["runs"].values()]
    assert all(s == start[0] for s in start)  # every policy starts as the same SFT model
    assert [b["n"] for b in results["best_of_n"]] == list(settings["best_of"])


def test_the_reward_model_loads_only_with_its_checksum(tmp_path):
    model = load_reward_model()
    assert not model.training
    copy = tmp_path / "reward_model"
    copy.mkdir()
    card = reward_model_card()
    (copy / "card.json").write_text(json.dumps(card))
    data = bytearray((RESULTS_DIR / "reward_model" / "model.pt").read_bytes())
    data[-100] ^= 1
    (copy / "model.pt").write_bytes(bytes(data))
    assert sha256(copy / "model.pt") != card["files"]["model.pt"]["sha256"]
    with pytest.raises(ValueError, match="SHA-256 differs"):
        load_reward_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="no RLHF results"):
        load_rlhf_results(tmp_path / "nowhere")


def test_the_reward_model_prefers_what_the_gold_reward_prefers_on_fresh_replies():
    settings = load_rlhf_results()["settings"]
    sft, tokenizer = load_pretrained("instruct")
    examples = task_examples(settings["kinds"], 400, "test", "fresh replies")
    prompts = chat_prompts(tokenizer, examples)
    end, pad = tokenizer.specials["<|endoftext|>"], tokenizer.specials["<|pad|>"]
    generator = torch.Generator().manual_seed(random.Random(0).randrange(2**31))
    rollout = sample_rollout(sft, prompts, 2, settings["max_new_tokens"], end, pad, 1.0, generator)
    gold = GoldReward(tokenizer, examples)(rollout).view(-1, 2)
    proxy = reward_fn(load_reward_model())(rollout).view(-1, 2)
    differs = gold[:, 0] != gold[:, 1]
    agree = (proxy[:, 0] > proxy[:, 1]) == (gold[:, 0] > gold[:, 1])
    accuracy = float(agree[differs].float().mean())
    documented = reward_model_card()["metrics"]["accuracy_gold"]
    assert int(differs.sum()) >= 100
    # 100+ pairs: a binomial standard error below 0.05; the card says 0.58
    assert accuracy > max(documented - 0.15, 0.5), (accuracy, documented)
