"""Two processes under torchrun (DistributedDataParallel, gloo, loopback) take the same
steps as one process on the whole global batch, write one checkpoint and one log, and
resume exactly."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_train_script.py")
TIMEOUT_SECONDS = 180


def load_script():
    spec = importlib.util.spec_from_file_location("ddp_train_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launch_two_processes(out_dir: Path) -> str:
    """Run the script under torchrun; fail (never hang) if it fails or takes too long."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(SCRIPT), str(out_dir)]
    environment = os.environ | {"OMP_NUM_THREADS": "1"}
    # The output goes to a file, not a pipe: a worker left behind would keep a pipe open.
    log = out_dir / "torchrun.out"
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment
        )
        try:
            process.wait(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.terminate()  # torchrun stops its workers on SIGTERM
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            pytest.fail(f"torchrun did not finish in {TIMEOUT_SECONDS} s:\n{tail(log)}")
    if process.returncode != 0:
        pytest.fail(f"torchrun exited with {process.returncode}:\n{tail(log)}")
    return log.read_text()


def tail(path: Path) -> str:
    return path.read_text()[-3000:]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ddp")
    output = launch_two_processes(out_dir)
    ranks = [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return out_dir, output, ranks


def assert_equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_two_ranks_match_one_process_on_the_whole_global_batch(ddp_run, tmp_path):
    _, _, ranks = ddp_run
    single = load_script().run(tmp_path)
    parity = ranks[0]["parity"]
    for name, tensor in single["parameters"].items():
        torch.testing.assert_close(parity["parameters"][name], tensor, rtol=1e-5, atol=1e-6)
    history, reference = parity["history"], single["history"]
    assert history["lr"] == reference["lr"]
    assert history["eval_steps"] == reference["eval_steps"] == [5, 10, 15, 20, 25]
    for key in ("train_loss", "grad_norm", "eval_loss"):
        assert history[key] == pytest.approx(reference[key], rel=1e-5, abs=1e-7), key
    assert history["train_loss"][-1] < 0.05 * history["train_loss"][0]  # it did learn


def test_both_ranks_end_with_the_same_parameters_and_history(ddp_run):
    _, _, ranks = ddp_run
    for run in ("parity", "uninterrupted", "resumed"):
        assert_equal_states(ranks[0][run]["parameters"], ranks[1][run]["parameters"])
        assert ranks[0][run]["history"] == ranks[1][run]["history"]


def test_a_crashed_data_parallel_run_resumes_exactly(ddp_run):
    # Dropout masks differ between the ranks, so each rank must get its own random state
    # back from the checkpoint (written at step 10; the crash was at step 13).
    out_dir, _, ranks = ddp_run
    for rank in ranks:
        assert_equal_states(rank["resumed"]["parameters"], rank["uninterrupted"]["parameters"])
        assert rank["resumed"]["history"] == rank["uninterrupted"]["history"]
    checkpoint = torch.load(out_dir / "dropout_resumed.pt", weights_only=True)
    assert len(checkpoint["rng"]) == 2
    assert not torch.equal(checkpoint["rng"][0]["torch"], checkpoint["rng"][1]["torch"])


def test_rank_0_alone_writes_the_checkpoint_the_log_and_the_progress_bar(ddp_run):
    out_dir, output, ranks = ddp_run
    assert not list(out_dir.glob(".*.tmp"))  # no temporary checkpoint files left
    checkpoint = torch.load(out_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 25 and checkpoint["config"]["world_size"] == 2
    assert_equal_states(checkpoint["model"], ranks[0]["parity"]["parameters"])
    records = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 26))
    assert [r["loss"] for r in records] == ranks[0]["parity"]["history"]["train_loss"]
    assert "bar of rank 0" in output and "bar of rank 1" not in output
    # saves at steps 10, 20, 25; 5, 10, 15, 20, 25; 5, 10 (then the crash); 15, 20, 25
    assert ranks[0]["writes"] == {"checkpoints": 13, "logs": 1}
    assert ranks[1]["writes"] == {"checkpoints": 0, "logs": 0}
