"""Recipe: Chapter 9's comparison of pretraining objectives at equal compute.

    python recipes/objectives_small.py                                # the shipped bodies
    python recipes/objectives_small.py --tiny --out /tmp/objectives   # a smoke run

Three bodies of the same width and depth, pretrained on the same text with the shipped
tokenizer, seeded and offline:

1. **Text.** Grammar sentences grouped into documents by their subject's noun
   (:func:`llmcourse.data.documents.topic_documents`); examples are pairs of sentences,
   ``<eot> A <eot> B`` (:mod:`llmcourse.training.objective_batches`).
2. **Pretraining at equal compute.** A GPT with the causal LM loss, a BERT with masked
   LM plus next-sentence prediction, and a T5 (one encoder and one decoder block
   against the others' two blocks) with span corruption. The training FLOPs of one
   step (forward and backward) are counted by ``torch.utils.flop_counter`` on a few
   batches; each model gets the number of steps that spends the GPT's budget.
3. **Fine-tuning.** Each body, and a randomly initialised GPT, fine-tuned on two tasks
   (agreement and chunking, :mod:`llmcourse.training.finetuning`) in three regimes:
   the head only on the frozen body, the last block too, everything; three seeds each.

Writes ``llmcourse/models/weights/objectives/`` (or ``--out``): ``gpt.pt``, ``bert.pt``
(with its NSP layer), ``t5.pt`` (float32 state dicts) and ``card.json``
(configurations, FLOPs, steps, curves, held-out metrics, the fine-tuning table and
the files' SHA-256), loaded by :mod:`llmcourse.models.objective_bodies` and checked by
``tests/test_objective_bodies.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from provenance import git_revision
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from llmcourse.data.documents import topic_documents
from llmcourse.models import BERT, GPT, T5, load_pretrained
from llmcourse.models.objective_bodies import (
    FINE_TUNING,
    KINDS,
    POOLS,
    WEIGHTS_FOLDER,
    body_config,
    body_of,
    fine_tune,
    objective_metrics,
)
from llmcourse.models.pretrained import sha256
from llmcourse.training import next_sentence_pairs, next_token_loss, train
from llmcourse.training.finetuning import REGIMES
from llmcourse.training.objective_batches import (
    BERTForPretraining,
    causal_lm_batches,
    consecutive_pairs,
    encode_documents,
    masked_lm_nsp_batches,
    masked_lm_nsp_loss,
    span_corruption_batches,
    span_corruption_loss,
)

RECIPE = "recipes/objectives_small.py"


@dataclass(frozen=True)
class Recipe:
    name: str
    sentences: int = 40_000
    gpt_steps: int = 1500
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 100
    flop_batches: int = 8
    seeds: tuple[int, ...] = (0, 1, 2)
    tasks: tuple[str, ...] = ("agreement", "chunking")
    seed: int = 0


SHIPPED = Recipe("shipped")
TINY = replace(
    SHIPPED,
    name="tiny",
    sentences=2000,
    gpt_steps=20,
    warmup_steps=2,
    seeds=(0,),
    tasks=("agreement",),
)


def step_flops(model, loss_fn, batches, n: int) -> float:
    """The mean FLOPs of a forward and backward pass over ``n`` batches."""
    total = 0
    for _ in range(n):
        counter = FlopCounterMode(display=False)
        with counter:
            loss_fn(model, next(batches)).backward()
        total += counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    return total / n


def main(argv: list[str] | None = None) -> dict:
    """Run the recipe; returns the card it wrote."""
    start = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help=f"output folder (default: {WEIGHTS_FOLDER})")
    parser.add_argument("--tiny", action="store_true", help="a few steps, for a smoke run")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    recipe = TINY if args.tiny else SHIPPED
    out = args.out or WEIGHTS_FOLDER
    torch.set_num_threads(args.threads)
    _, tokenizer = load_pretrained()

    documents = encode_documents(tokenizer, topic_documents(recipe.sentences, seed=11))
    pairs = consecutive_pairs(documents)
    nsp_pairs = next_sentence_pairs(documents, seed=recipe.seed)
    b = recipe.batch_size
    setups = {
        "gpt": (
            lambda: GPT(body_config("gpt", len(tokenizer))),
            lambda seed: causal_lm_batches(tokenizer, pairs, b, seed),
            next_token_loss,
        ),
        "bert": (
            lambda: BERTForPretraining(BERT(body_config("bert", len(tokenizer)))),
            lambda seed: masked_lm_nsp_batches(tokenizer, nsp_pairs, b, seed),
            masked_lm_nsp_loss,
        ),
        "t5": (
            lambda: T5(body_config("t5", len(tokenizer))),
            lambda seed: span_corruption_batches(tokenizer, pairs, b, seed),
            span_corruption_loss,
        ),
    }
    pretraining, models = {}, {}
    flops = {
        kind: step_flops(make(), loss, batches(99), recipe.flop_batches)
        for kind, (make, batches, loss) in setups.items()
    }
    budget = recipe.gpt_steps * flops["gpt"]
    for kind, (make, batches, loss) in setups.items():
        steps = round(budget / flops[kind])
        torch.manual_seed(recipe.seed)
        model = make()
        began = time.perf_counter()
        history = train(
            model,
            loss,
            batches(recipe.seed),
            steps=steps,
            lr=recipe.lr,
            schedule="cosine",
            warmup_steps=recipe.warmup_steps,
            min_lr=recipe.lr / 10,
            progress=not args.no_progress,
            desc=f"pretraining {kind}",
        )
        models[kind] = model.eval()
        body = body_of(model)
        every = max(1, steps // 100)
        pretraining[kind] = {
            "steps": steps,
            "flops_per_step": flops[kind],
            "flops": steps * flops[kind],
            "parameters": sum(p.numel() for p in body.parameters()),
            "seconds": round(time.perf_counter() - began, 1),
            "loss_curve": [
                [i + 1, round(sum(history.train_loss[i : i + every]) / every, 4)]
                for i in range(0, steps - every + 1, every)
            ],
        }
        summary = {k: v for k, v in pretraining[kind].items() if k != "loss_curve"}
        print(kind, json.dumps(summary), flush=True)
    held_out = objective_metrics(models, tokenizer)

    rows = []
    grid = [(t, r, k) for t in recipe.tasks for r in REGIMES for k in (*KINDS, "random")]
    for task, regime, kind in tqdm(grid, desc="fine-tuning", disable=args.no_progress):
        scores = [
            fine_tune(models.get(kind), kind, task, regime, tokenizer, seed)
            for seed in recipe.seeds
        ]
        rows.append(
            {
                "task": task,
                "regime": regime,
                "body": kind,
                "scores": scores,
                "mean": statistics.fmean(scores),
            }
        )

    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for kind, model in models.items():
        path = out / f"{kind}.pt"
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, path)
        files[path.name] = {"bytes": path.stat().st_size, "sha256": sha256(path)}
    card = {
        "format": 1,
        "recipe": RECIPE,
        "git_revision": git_revision(),
        "settings": asdict(recipe),
        "configs": {kind: asdict(body_config(kind, len(tokenizer))) for kind in KINDS},
        "pools": POOLS,
        "fine_tuning": {"settings": FINE_TUNING, "results": rows},
        "pretraining": pretraining,
        "held_out": held_out,
        "data": {"documents": len(documents), "pairs": len(pairs), "nsp_pairs": len(nsp_pairs)},
        "files": files,
        "software": {"python": platform.python_version(), "torch": torch.__version__},
        "threads": args.threads,
        "wall_time_seconds": round(time.perf_counter() - start, 1),
    }
    (out / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(held_out), flush=True)
    for row in rows:
        print(row["task"], row["regime"], row["body"], f"{row['mean']:.3f}", row["scores"])
    return card


if __name__ == "__main__":
    main()
