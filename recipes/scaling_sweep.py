"""Recipe: the scaling sweep of Chapter 10, run once by a maintainer; its results ship.

    python recipes/scaling_sweep.py                  # the whole grid (about 2 hours on 2 cores)
    python recipes/scaling_sweep.py --tiny --out /tmp/sweep.json      # a smoke run

Every run is :func:`llmcourse.scaling.sweep.train_run` (a GPT or an LSTM of one size
trained on one number of tokens, evaluated on held-out text; see that module for what
is fixed). The grid:

- **lexicon, IsoFLOP slices**: for each compute budget ``C`` in 1e11, 3e11, 1e12, 3e12
  and 1e13 FLOPs (``C = 6 N D``), six to nine GPT sizes from the smallest up, each
  trained on ``D = C / 6N`` tokens of fresh sentences of the Zipfian lexical grammar
  (the optimum is at a small size: this language rewards data more than parameters).
  These runs give L(N), L(D), the compute frontier and all three of Chinchilla's
  approaches.
- **lexicon, architectures at a fixed D**: GPT sizes A to G and LSTM sizes a to e, each
  on the same 2,097,152 tokens (Kaplan et al.'s comparison of the two architectures).
- **grammar, fixed D**: GPT sizes A to G on 2,097,152 tokens of the course grammar,
  which they all learn almost perfectly: why a scaling study needs a harder language.
- **prose, IsoFLOP slices**: budgets 3e10 to 1e12 on the Python documentation's
  characters (long runs repeat the 241,289 training characters).
- **prose, data-limited**: size E trained for 1,500 steps on the first 15k to 241k
  characters, evaluated 15 times (the best evaluation is the early-stopped loss).

Runs go to ``--workers`` processes of one thread each, the longest first; every
finished run is appended to ``--work`` (JSON lines), and a rerun skips what is there,
so an interrupted sweep resumes. At the end, ``--out`` (by default
``llmcourse/scaling/results/sweep.json``) gets every run of the grid (not other runs
that the work file may hold), the settings and the git revision of the code that ran
them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch
from provenance import git_revision
from tqdm.auto import tqdm

from llmcourse.scaling.results import RESULTS_FILE
from llmcourse.scaling.sweep import (
    BATCH_SIZE,
    CONTEXT,
    SIZES,
    TOKENS_PER_STEP,
    RunSpec,
    build_model,
    train_run,
)

LEXICON_SLICES = {
    1e11: "ABCDEF",
    3e11: "ABCDEFG",
    1e12: "ABCDEFGH",
    3e12: "ABCDEFGHI",
    1e13: "ABCDEFGHI",
}
PROSE_SLICES = {3e10: "ABCDE", 1e11: "ABCDEF", 3e11: "BCDEFG", 1e12: "CDEFGH"}
FIXED_TOKENS = 2048 * TOKENS_PER_STEP
CODE = [f"llmcourse/{part}" for part in ("checks.py", "data", "text", "classic", "modules")]
CODE += [f"llmcourse/{part}" for part in ("models", "scaling", "training")]
PROSE_UNIQUE = (15_000, 30_000, 60_000, 120_000, None)
DATA_LIMITED_STEPS = 1500


def tokens_for(budget: float, corpus: str, size: str) -> int:
    """``D = C / 6N``, rounded to whole steps (at least 16)."""
    _, n, _ = build_model(RunSpec(corpus, "gpt", size, TOKENS_PER_STEP))
    steps = max(16, round(budget / (6 * n) / TOKENS_PER_STEP))
    return steps * TOKENS_PER_STEP


def grid(tiny: bool = False) -> list[tuple[str, RunSpec]]:
    """Every run of the sweep, with the analysis group it belongs to."""
    if tiny:
        return [
            ("isoflop grammar 1e9", RunSpec("grammar", "gpt", "A", 16 * TOKENS_PER_STEP)),
            ("isoflop grammar 1e9", RunSpec("grammar", "gpt", "B", 16 * TOKENS_PER_STEP)),
            ("fixed-D grammar", RunSpec("grammar", "lstm", "a", 16 * TOKENS_PER_STEP)),
            ("data-limited prose", RunSpec("prose", "gpt", "A", 16 * TOKENS_PER_STEP, unique=5000)),
        ]
    runs = []
    for budget, sizes in LEXICON_SLICES.items():
        for size in sizes:
            spec = RunSpec("lexicon", "gpt", size, tokens_for(budget, "lexicon", size))
            runs.append((f"isoflop lexicon {budget:.0e}", spec))
    for size in "ABCDEFG":
        runs.append(("fixed-D lexicon", RunSpec("lexicon", "gpt", size, FIXED_TOKENS)))
    for size in "abcde":
        runs.append(("fixed-D lexicon", RunSpec("lexicon", "lstm", size, FIXED_TOKENS)))
    for size in "ABCDEFG":
        runs.append(("fixed-D grammar", RunSpec("grammar", "gpt", size, FIXED_TOKENS)))
    for budget, sizes in PROSE_SLICES.items():
        for size in sizes:
            spec = RunSpec("prose", "gpt", size, tokens_for(budget, "prose", size))
            runs.append((f"isoflop prose {budget:.0e}", spec))
    for unique in PROSE_UNIQUE:
        spec = RunSpec(
            "prose", "gpt", "E", DATA_LIMITED_STEPS * TOKENS_PER_STEP, unique=unique, evals=15
        )
        runs.append(("data-limited prose", spec))
    return runs


def cost(spec: RunSpec) -> float:
    """A rough relative cost, to start the longest runs first."""
    _, _, flops = build_model(spec)
    return spec.tokens * (flops["total"] + 2e5)  # + a per-token overhead of small models


def key(group: str, record: dict) -> str:
    """A run's identity: its group and the fields of its spec."""
    return json.dumps([group, {f.name: record[f.name] for f in fields(RunSpec)}])


def worker(job: tuple[str, dict]) -> dict:
    group, spec = job
    torch.set_num_threads(1)
    return {"group": group, **train_run(RunSpec(**spec))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    parser.add_argument("--work", type=Path, help="finished runs, JSON lines (for resuming)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="a few runs of 16 steps")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.gettempdir()) / (
        "llmcourse-scaling-sweep" + ("-tiny" if args.tiny else "") + ".jsonl"
    )
    torch.set_num_threads(1)
    start = time.perf_counter()
    revision = git_revision("recipes", *CODE)  # the code the runs import, not the grader's
    runs = grid(args.tiny)
    done = [json.loads(line) for line in work.read_text().splitlines()] if work.exists() else []
    finished = {key(r["group"], r) for r in done}
    todo = [
        (group, asdict(spec))
        for group, spec in sorted(runs, key=lambda run: -cost(run[1]))
        if key(group, asdict(spec)) not in finished
    ]
    print(f"{len(runs)} runs, {len(runs) - len(todo)} already in {work}", flush=True)
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers) as pool, work.open("a") as log:
        for record in tqdm(pool.imap_unordered(worker, todo), total=len(todo), desc="sweep"):
            log.write(json.dumps(record) + "\n")
            log.flush()
            done.append(record)
    order = {key(group, asdict(spec)): i for i, (group, spec) in enumerate(runs)}
    done = [r for r in done if key(r["group"], r) in order]
    results = {
        "format": 1,
        "recipe": "recipes/scaling_sweep.py" + (" --tiny" if args.tiny else ""),
        "git_revision": revision,
        "software": {"python": platform.python_version(), "torch": torch.__version__},
        "settings": {
            "batch_size": BATCH_SIZE,
            "context": CONTEXT,
            "sizes": SIZES,
            "learning_rate": "min(1e-2, 2e-3 * 128 / d_model), warmup min(100, steps/10), "
            "cosine to a tenth; AdamW, weight decay 0.1 on matrices, clipping at 1.0",
            "lexicon_slices": {f"{c:.0e}": s for c, s in LEXICON_SLICES.items()},
            "prose_slices": {f"{c:.0e}": s for c, s in PROSE_SLICES.items()},
        },
        "wall_seconds": round(time.perf_counter() - start, 1),  # of this invocation
        "runs": sorted(done, key=lambda r: order[key(r["group"], r)]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}: {len(done)} runs", file=sys.stderr)


if __name__ == "__main__":
    main()
