"""Checkpoints: atomic writes that survive a crash, plain data only, random states restored."""

from __future__ import annotations

import io
import pickle
import random

import numpy as np
import pytest
import torch

from llmcourse.training import load_checkpoint, rng_state, save_checkpoint, set_rng_state


def crash_halfway(monkeypatch):
    """Make torch.save write the first half of the real bytes and then fail, like a full disk."""
    real_save = torch.save

    def half_save(obj, file):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        data = buffer.getvalue()
        file.write(data[: len(data) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", half_save)


def test_save_then_load_round_trip(tmp_path):
    state = {"step": 3, "weights": torch.arange(6.0).reshape(2, 3), "names": ["a", "b"]}
    path = tmp_path / "run.pt"
    save_checkpoint(state, path)
    loaded = load_checkpoint(path)
    assert loaded["step"] == 3 and loaded["names"] == ["a", "b"]
    assert torch.equal(loaded["weights"], state["weights"])
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    save_checkpoint({"step": 1, "weights": torch.ones(1000)}, path)
    before = path.read_bytes()
    crash_halfway(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint({"step": 2, "weights": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    loaded = load_checkpoint(path)
    assert loaded["step"] == 1 and torch.equal(loaded["weights"], torch.ones(1000))
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temporary file left


def test_a_crash_during_the_first_save_leaves_no_file(tmp_path, monkeypatch):
    crash_halfway(monkeypatch)
    with pytest.raises(OSError):
        save_checkpoint({"step": 1}, tmp_path / "run.pt")
    assert list(tmp_path.iterdir()) == []


def test_the_half_written_bytes_would_have_been_a_corrupt_checkpoint(tmp_path, monkeypatch):
    # What the atomic write protects against: the same half-write straight to the path.
    crash_halfway(monkeypatch)
    path = tmp_path / "run.pt"
    with pytest.raises(OSError), path.open("wb") as file:
        torch.save({"weights": torch.ones(1000)}, file)
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="failed reading zip archive"):
        load_checkpoint(path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"object": io.StringIO("runs code when unpickled")}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint(path)


def test_a_file_that_is_not_a_dictionary_is_refused(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(2), path)
    with pytest.raises(ValueError, match="is not a checkpoint: it holds a Tensor"):
        load_checkpoint(path)


def test_a_missing_directory_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint directory"):
        save_checkpoint({}, tmp_path / "missing" / "run.pt")


def draws() -> tuple[torch.Tensor, float, float, float]:
    """One draw from each generator; numpy's global one is what checkpoints must restore."""
    uniform, gaussian = np.random.rand(), np.random.randn()  # noqa: NPY002
    return torch.rand(3), random.random(), float(uniform), float(gaussian)


def test_random_states_survive_a_save_and_load(tmp_path):
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 (the global generator is what is being saved)
    np.random.randn()  # noqa: NPY002 (leaves a cached gaussian in the state)
    path = tmp_path / "rng.pt"
    save_checkpoint({"rng": rng_state()}, path)
    expected = draws()
    draws()
    set_rng_state(load_checkpoint(path)["rng"])
    got = draws()
    assert torch.equal(got[0], expected[0])
    assert got[1:] == expected[1:]
