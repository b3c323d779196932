"""The shipped few-shot and instruction-tuned models (Chapter 11): files, cards, and the
documented evaluation, recomputed."""

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from llmcourse.models import (
    CARD_FILE,
    GPT,
    MODEL_FILE,
    TOKENIZER_FILE,
    WEIGHTS_DIR,
    load_pretrained,
    model_card,
    sha256,
)
from llmcourse.prompting.chat import encode_dialogue
from llmcourse.prompting.evaluation import fewshot_card_metrics, instruct_card_metrics

ROOT = Path(__file__).resolve().parents[1]
DTYPES = {"fewshot": torch.bfloat16, "instruct": torch.float32}


@pytest.fixture(scope="module", params=["fewshot", "instruct"])
def shipped(request):
    model, tokenizer = load_pretrained(request.param)
    return request.param, model, tokenizer, model_card(request.param)


def test_all_shipped_weights_stay_under_twenty_megabytes():
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.rglob("*") if p.is_file())
    assert total < 20e6


@pytest.mark.parametrize("name", ["fewshot", "instruct"])
def test_files_are_plain_tensors_of_the_documented_dtype(name):
    folder = WEIGHTS_DIR / name
    assert (folder / MODEL_FILE).stat().st_size < 6e6
    state = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
    assert all(isinstance(t, torch.Tensor) and t.dtype == DTYPES[name] for t in state.values())
    card = model_card(name)
    for file in (MODEL_FILE, TOKENIZER_FILE):
        assert card["files"][file]["sha256"] == sha256(folder / file)
        assert card["files"][file]["bytes"] == (folder / file).stat().st_size
    assert (folder / CARD_FILE).is_file()


def test_the_card_names_its_recipe_revision_and_model(shipped):
    name, model, tokenizer, card = shipped
    assert card["name"] == name and card["recipe"] == "recipes/instruct_small.py"
    assert (ROOT / card["recipe"]).is_file()
    assert len(card["git_revision"].split("+")[0]) == 40
    assert isinstance(model, GPT) and not model.training
    assert asdict(model.config) == card["config"] and model.config.block_size == 256
    assert sum(p.numel() for p in model.parameters()) == card["parameters"]
    # the tokenizer is the small model's, unchanged
    small = WEIGHTS_DIR / "small" / TOKENIZER_FILE
    assert card["files"][TOKENIZER_FILE]["sha256"] == sha256(small)


def test_a_corrupt_file_names_the_recipe_that_rebuilds_it(tmp_path):
    for file in (MODEL_FILE, TOKENIZER_FILE, CARD_FILE):
        (tmp_path / file).write_bytes((WEIGHTS_DIR / "instruct" / file).read_bytes())
    state = torch.load(tmp_path / MODEL_FILE, weights_only=True)
    state["embed.weight"][0, 0] += 1
    torch.save(state, tmp_path / MODEL_FILE)
    with pytest.raises(ValueError, match="instruct_small.py"):
        load_pretrained("instruct", directory=tmp_path)


def test_the_fewshot_card_s_evaluation_is_reproduced():
    model, tokenizer = load_pretrained("fewshot")
    card = model_card("fewshot")["evaluation"]
    got = fewshot_card_metrics(model, tokenizer, card["prompts_per_number"])
    assert got["loss"] == pytest.approx(card["loss"], abs=1e-4)
    for key in ("four_shot_by_kind", "held_out_rules_4_shot", "closed_book_qa"):
        assert got[key] == pytest.approx(card[key], abs=1e-9), key
    assert got["held_out_mappings_by_shots"] == pytest.approx(
        {int(k): v for k, v in card["held_out_mappings_by_shots"].items()}, abs=1e-9
    )
    for style, by_steps in card["arithmetic_by_steps"].items():
        assert got["arithmetic_by_steps"][style] == pytest.approx(
            {int(k): v for k, v in by_steps.items()}, abs=1e-9
        )


def test_the_fewshot_model_learns_in_context_and_reasons_step_by_step():
    card = model_card("fewshot")["evaluation"]
    shots = {int(k): v for k, v in card["held_out_mappings_by_shots"].items()}
    assert shots[0] < 0.2 and shots[8] > shots[1] > shots[0]
    direct, chain = (card["arithmetic_by_steps"][k] for k in ("direct_4_shot", "chain_2_shot"))
    assert sum(chain[s] for s in ("3", "4", "5")) > sum(direct[s] for s in ("3", "4", "5"))


def test_the_instruct_card_s_evaluation_is_reproduced():
    model, tokenizer = load_pretrained("instruct")
    card = model_card("instruct")["evaluation"]
    got = instruct_card_metrics(model, tokenizer, card["dialogues_per_number"])
    assert got["loss"] == pytest.approx(card["loss"], abs=1e-4)
    for key in (
        "training_tasks_by_kind",
        "held_out_phrasing_by_kind",
        "held_out_parameters",
        "held_out_rules",
        "facts",
    ):
        assert got[key] == pytest.approx(card[key], abs=1e-9), key


def test_the_instruct_model_follows_instructions_and_reads_passages():
    card = model_card("instruct")["evaluation"]
    assert card["training_tasks_mean"] > 0.5
    facts = card["facts"]
    assert facts["passage_unseen"] > facts["closed_book_unseen"] + 0.1


def test_the_instruct_model_answers_in_the_chat_template_and_stops():
    model, tokenizer = load_pretrained("instruct")
    messages = [{"role": "user", "content": "Give the plural.\ncat"}]
    ids, _ = encode_dialogue(tokenizer, messages, add_generation_prompt=True)
    end = tokenizer.specials["<|endoftext|>"]
    with torch.no_grad():
        logits = model(torch.tensor([ids + tokenizer.encode("cats")]))
    assert int(logits[0, -1].argmax()) == end


def test_a_tiny_run_of_the_recipe_writes_loadable_models(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    command = [sys.executable, "recipes/instruct_small.py", "--tiny", "--no-progress"]
    command += ["--out", str(out), "--work", str(work)]
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT, timeout=600)
    for name in ("fewshot", "instruct"):
        model, _ = load_pretrained(name, directory=out / name)
        card = model_card(name, directory=out / name)
        assert card["name"] == name and asdict(model.config) == card["config"]
        state = torch.load(out / name / MODEL_FILE, weights_only=True)
        assert {t.dtype for t in state.values()} == {DTYPES[name]}
