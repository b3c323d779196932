"""The scaling sweep: run specifications, one run, and the shipped results.

The shipped results (``llmcourse/scaling/results/sweep.json``) come from
``recipes/scaling_sweep.py``. Rerunning the cheapest run of each corpus must reproduce
its shipped held-out losses to within 0.01 nats: they are the same code on the same seeds,
and only floating-point differences between machines and thread counts may move them
(by far less than that). So the file cannot drift from the code.
"""

from __future__ import annotations

import math

import pytest
import torch

from llmcourse.scaling import (
    SIZES,
    TOKENS_PER_STEP,
    RunSpec,
    curve,
    grammar_eval,
    load_sweep,
    runs_of,
    train_run,
)

TOLERANCE = 0.01  # nats per token


@pytest.fixture(scope="module")
def shipped():
    return load_sweep()


def test_the_shipped_results_are_complete_and_consistent(shipped):
    runs = shipped["runs"]
    assert len(runs) == 86 and shipped["git_revision"] != "unknown"
    groups = {run["group"] for run in runs}
    assert {"fixed-D lexicon", "fixed-D grammar", "data-limited prose"} < groups
    budgets = {g for g in groups if g.startswith("isoflop lexicon")}
    assert len(budgets) == 5
    floors = {corpus: grammar_eval(corpus).floor for corpus in ("grammar", "lexicon")}
    for run in runs:
        assert run["C"] == 6 * run["N"] * run["D"] and run["D"] % TOKENS_PER_STEP == 0
        assert run["eval_loss"][-1] == run["loss"] and math.isfinite(run["loss"])
        assert run["train_curve"]["steps"][-1] == run["D"] // TOKENS_PER_STEP
        if run["corpus"] in floors:  # no model beats the entropy of its language
            assert run["loss"] > floors[run["corpus"]]
    for group in budgets:  # an IsoFLOP slice: one budget, several sizes
        slice_ = runs_of(shipped, group)
        budget = float(group.split()[-1])
        assert len(slice_) >= 6
        assert all(abs(run["C"] / budget - 1) < 0.1 for run in slice_)


def cheapest(shipped, corpus):
    return min(
        (run for run in shipped["runs"] if run["corpus"] == corpus), key=lambda r: r["seconds"]
    )


@pytest.mark.parametrize("corpus", ["grammar", "lexicon", "prose"])
def test_rerunning_a_shipped_run_reproduces_its_loss(shipped, corpus):
    run = cheapest(shipped, corpus)
    fields = ("corpus", "arch", "size", "tokens", "seed", "unique", "evals")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        again = train_run(RunSpec(**{field: run[field] for field in fields}))
    finally:
        torch.set_num_threads(threads)
    assert again["N"] == run["N"] and again["D"] == run["D"]
    assert again["loss"] == pytest.approx(run["loss"], abs=TOLERANCE)
    assert again["eval_loss"] == pytest.approx(run["eval_loss"], abs=TOLERANCE)


def test_run_specs_are_validated():
    with pytest.raises(ValueError, match="corpus must be one of"):
        RunSpec("wiki", "gpt", "A", 1024)
    with pytest.raises(ValueError, match="size must be one of"):
        RunSpec("grammar", "gpt", "a", 1024)
    with pytest.raises(ValueError, match="multiple of 1024"):
        RunSpec("grammar", "gpt", "A", 1500)
    with pytest.raises(ValueError, match="unique applies to the prose"):
        RunSpec("grammar", "gpt", "A", 1024, unique=100)
    assert RunSpec("grammar", "lstm", "a", 2048).steps == 2
    assert list(SIZES) == list("ABCDEFGHI")


def test_curve_is_a_log_spaced_summary_of_the_losses():
    losses = [float(i) for i in range(1, 1001)]
    summary = curve(losses, points=20)
    assert summary["steps"][-1] == 1000 and summary["steps"] == sorted(set(summary["steps"]))
    start = 0
    for step, mean in zip(summary["steps"], summary["loss"], strict=True):
        assert mean == pytest.approx(sum(losses[start:step]) / (step - start))
        start = step
