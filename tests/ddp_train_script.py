"""A data-parallel training run for ``tests/test_training_ddp.py`` (not a test itself).

Launched as ``python -m torch.distributed.run --standalone --nproc_per_node 2
tests/ddp_train_script.py OUT_DIR``: each rank trains on its half of every global batch
and saves what it ended with to ``OUT_DIR/rank<r>.pt``. Imported, :func:`run` trains the
same model on the whole global batches in one process, the reference the test compares
with. A second pair of runs, with per-rank dropout, crashes at step 13 and is resumed
from its checkpoint, to check that a resume restores each rank's own random state.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from llmcourse.training import distributed, loop, train

GLOBAL_BATCH = 16
STEPS = 25
SETTINGS = {
    "steps": STEPS,
    "lr": 0.05,
    "weight_decay": 0.01,
    "grad_clip": 0.5,
    "eval_every": 5,
    "schedule": "cosine",
    "warmup_steps": 5,
    "min_lr": 0.005,
}


def global_batches(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    w = torch.tensor([[0.5], [-1.0], [0.25]])
    while True:
        x = torch.randn(GLOBAL_BATCH, 3, generator=generator)
        yield x, torch.tanh(x @ w)


def local_batches():
    """This rank's shard of every global batch (all of it in one process)."""
    rank, world_size = distributed.rank(), distributed.world_size()
    for x, y in global_batches():
        yield distributed.shard(x, rank, world_size), distributed.shard(y, rank, world_size)


def make_model(dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1))


def mse(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def held_out_loss(model) -> float:
    """Each rank scores its shard of a held-out batch; train averages the ranks."""
    x, y = next(global_batches(seed=1))
    rank, world_size = distributed.rank(), distributed.world_size()
    return mse(
        model, (distributed.shard(x, rank, world_size), distributed.shard(y, rank, world_size))
    )


def run(out_dir: Path, progress: bool = False) -> dict:
    """Train the model and return its parameters and history (plain data)."""
    model = make_model()
    history = train(
        model,
        mse,
        local_batches(),
        eval_fn=held_out_loss,
        progress=progress,
        desc=f"bar of rank {distributed.rank()}",
        checkpoint_path=out_dir / "checkpoint.pt",
        checkpoint_every=10,
        log_path=out_dir / "log.jsonl",
        **SETTINGS,
    )
    return {"parameters": model.state_dict(), "history": asdict(history)}


def dropout_run(checkpoint_path: Path, crash_at: int | None = None) -> dict:
    """A run with dropout whose masks differ between ranks, optionally crashing."""
    model = make_model(dropout=0.3)
    torch.manual_seed(100 + distributed.rank())
    calls = itertools.count(1)

    def loss_fn(model, batch):
        if next(calls) == crash_at:
            raise RuntimeError("simulated crash")
        return mse(model, batch)

    arguments = SETTINGS | {"checkpoint_every": 5, "progress": False}
    history = train(
        model, loss_fn, local_batches(), checkpoint_path=checkpoint_path, resume=True, **arguments
    )
    return {"parameters": model.state_dict(), "history": asdict(history)}


def count_writes() -> dict[str, int]:
    """Count this rank's checkpoint saves and experiment-log openings from now on."""
    writes = {"checkpoints": 0, "logs": 0}
    save_checkpoint, open_path = loop.save_checkpoint, Path.open

    def counting_save(state, path):
        writes["checkpoints"] += 1
        save_checkpoint(state, path)

    def counting_open(path, mode="r", *args, **kwargs):
        writes["logs"] += path.suffix == ".jsonl" and "w" in mode
        return open_path(path, mode, *args, **kwargs)

    loop.save_checkpoint, Path.open = counting_save, counting_open
    return writes


def main(out_dir: Path) -> None:
    if not distributed.init_from_env(timeout_seconds=60):
        raise SystemExit("run me with torchrun")
    try:
        writes = count_writes()
        result = {"parity": run(out_dir, progress=True), "writes": writes}
        result["uninterrupted"] = dropout_run(out_dir / "dropout_full.pt")
        try:
            dropout_run(out_dir / "dropout_resumed.pt", crash_at=13)
        except RuntimeError as error:
            assert str(error) == "simulated crash", error
        result["resumed"] = dropout_run(out_dir / "dropout_resumed.pt")
        torch.save(result, out_dir / f"rank{distributed.rank()}.pt")
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
