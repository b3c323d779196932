"""Chapter 9's shipped objective bodies (recipes/objectives_small.py): they load, match
their card's checksums and held-out metrics, were trained at equal compute, and one
fine-tuning run of the card's table reproduces."""

import json

import pytest
import torch

from llmcourse.models import BERT, GPT, T5, load_pretrained
from llmcourse.models.objective_bodies import (
    FINE_TUNING,
    KINDS,
    body_of,
    fine_tune,
    fine_tuning_table,
    load_objective_model,
    objective_metrics,
    objectives_card,
)
from llmcourse.training.finetuning import REGIMES


@pytest.fixture(scope="module")
def card():
    return objectives_card()


@pytest.fixture(scope="module")
def models():
    return {kind: load_objective_model(kind) for kind in KINDS}


@pytest.fixture(scope="module")
def tokenizer():
    return load_pretrained()[1]


def test_the_bodies_load_with_their_architectures(models):
    assert isinstance(models["gpt"], GPT) and isinstance(models["t5"], T5)
    assert isinstance(body_of(models["bert"]), BERT) and not models["bert"].training
    assert models["gpt"].config.n_layers == 2 and models["t5"].config.n_layers == 1


def test_pretraining_spent_equal_compute(card):
    spent = [card["pretraining"][kind]["flops"] for kind in KINDS]
    assert max(spent) / min(spent) < 1.01
    for kind in KINDS:
        run = card["pretraining"][kind]
        assert run["flops"] == pytest.approx(run["steps"] * run["flops_per_step"])


def test_the_held_out_metrics_reproduce(card, models, tokenizer):
    fresh = objective_metrics(models, tokenizer)
    for kind in KINDS:
        for name, value in card["held_out"][kind].items():
            assert fresh[kind][name] == pytest.approx(value, abs=2e-3), (kind, name)
    assert fresh["bert"]["nsp_accuracy"] > 0.65  # chance is 0.5: topic documents make NSP learnable


def test_the_table_is_complete(card):
    table = fine_tuning_table(card)
    bodies = (*KINDS, "random")
    tasks = card["settings"]["tasks"]
    assert set(table) == {(t, r, b) for t in tasks for r in REGIMES for b in bodies}
    assert card["fine_tuning"]["settings"] == FINE_TUNING


@pytest.mark.parametrize("kind", ["gpt", "random"])
def test_a_fine_tuning_run_reproduces(card, models, tokenizer, kind):
    task, regime, seed = "agreement", "head only", card["settings"]["seeds"][0]
    row = next(
        r
        for r in card["fine_tuning"]["results"]
        if (r["task"], r["regime"], r["body"]) == (task, regime, kind)
    )
    score = fine_tune(models.get(kind), kind, task, regime, tokenizer, seed)
    assert score == pytest.approx(row["scores"][0], abs=0.02)  # 6 of 300, thread counts


def test_a_corrupt_body_is_refused(tmp_path, card):
    for name in ("card.json", "gpt.pt"):
        source = objectives_card.__globals__["WEIGHTS_FOLDER"] / name
        (tmp_path / name).write_bytes(source.read_bytes())
    load_objective_model("gpt", tmp_path)
    state = torch.load(tmp_path / "gpt.pt", weights_only=True)
    state["lm_head.weight"] = state["lm_head.weight"] + 1
    torch.save(state, tmp_path / "gpt.pt")
    with pytest.raises(ValueError, match="SHA-256"):
        load_objective_model("gpt", tmp_path)
    with pytest.raises(ValueError, match="kind"):
        load_objective_model("xlnet")
    with pytest.raises(FileNotFoundError, match="objectives_small"):
        objectives_card(tmp_path / "nowhere")
    assert json.loads((tmp_path / "card.json").read_text()) == card
