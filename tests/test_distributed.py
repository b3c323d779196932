"""The data-parallel helpers in one process (the two-process run is test_training_ddp.py)."""

from __future__ import annotations

import pytest
import torch

from llmcourse.training import distributed


def test_shards_are_equal_consecutive_slices_that_make_up_the_batch():
    batch = torch.arange(12).reshape(6, 2)
    shards = [distributed.shard(batch, r, 3) for r in range(3)]
    assert [s.tolist() for s in shards] == [[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [10, 11]]]
    assert torch.equal(torch.cat(shards), batch)
    assert torch.equal(distributed.shard(batch, 0, 1), batch)


@pytest.mark.parametrize(
    ("shape", "rank", "world_size", "message"),
    [
        ((5, 2), 0, 2, r"divisible by world_size=2, got shape \(5, 2\)"),
        ((), 0, 1, r"divisible by world_size=1, got shape \(\)"),
        ((4,), 2, 2, r"rank must be an integer in \[0, 2\), got 2"),
        ((4,), -1, 2, "rank must be"),
        ((4,), 0, 0, "world_size must be an integer >= 1, got 0"),
    ],
)
def test_bad_shards_are_rejected(shape, rank, world_size, message):
    with pytest.raises(ValueError, match=message):
        distributed.shard(torch.zeros(shape), rank, world_size)


def test_without_torchrun_everything_is_one_process(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.init_from_env() is False
    assert not distributed.is_initialized()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    value = torch.tensor(2.5)
    assert distributed.mean_across_ranks(value) is value
    assert distributed.gather_objects({"a": 1}) == [{"a": 1}]


def test_an_incomplete_torchrun_environment_is_an_error(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(RuntimeError, match="MASTER_ADDR, MASTER_PORT not set"):
        distributed.init_from_env()


def test_the_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout_seconds must be > 0, got 0"):
        distributed.init_from_env(timeout_seconds=0)
