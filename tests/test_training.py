"""The shared training loop: it learns, is repeatable, clips, evaluates and validates;
its schedule, checkpoints, exact resume, experiment log and bf16 autocast."""

from __future__ import annotations

import io
import itertools
import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from llmcourse.training import evaluate, lr_at, train


def regression_batches(seed: int):
    generator = torch.Generator().manual_seed(seed)
    w = torch.tensor([[2.0], [-3.0]])
    while True:
        x = torch.randn(32, 2, generator=generator)
        yield x, x @ w + 0.5


def mse(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def fresh_model(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(2, 1)


def test_train_fits_a_linear_regression():
    model = fresh_model()
    history = train(model, mse, regression_batches(0), steps=300, lr=0.05, progress=False)
    assert len(history.train_loss) == 300
    assert history.train_loss[-1] < 1e-3 < history.train_loss[0]
    torch.testing.assert_close(
        model.weight.detach(), torch.tensor([[2.0, -3.0]]), atol=0.02, rtol=0
    )


def test_train_is_repeatable():
    runs = [
        train(fresh_model(), mse, regression_batches(1), steps=20, progress=False).train_loss
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_first_step_matches_a_hand_written_adamw_step():
    model, reference = fresh_model(), fresh_model()
    batch = next(regression_batches(2))
    history = train(
        model, mse, [batch], steps=1, lr=0.1, weight_decay=0.01, grad_clip=None, progress=False
    )
    groups = [  # weight decay on the matrix only, not on the bias
        {"params": [reference.weight], "weight_decay": 0.01},
        {"params": [reference.bias], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=0.1)
    loss = mse(reference, batch)
    loss.backward()
    norm = torch.sqrt(sum((p.grad**2).sum() for p in reference.parameters()))
    optimizer.step()
    assert history.train_loss == [pytest.approx(loss.item())]
    assert history.grad_norm == [pytest.approx(norm.item())]
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_gradient_is_clipped_to_the_given_norm():
    model = fresh_model()
    clipped_norms = []

    def loss_fn(m, batch):
        return 1000.0 * mse(m, batch)

    def record(m):  # runs after the step; the gradients of the step are still there
        clipped_norms.append(torch.sqrt(sum((p.grad**2).sum() for p in m.parameters())).item())
        return 0.0

    history = train(
        model,
        loss_fn,
        regression_batches(3),
        steps=3,
        grad_clip=0.5,
        eval_fn=record,
        eval_every=1,
        progress=False,
    )
    assert all(n > 0.5 for n in history.grad_norm)
    assert clipped_norms == [pytest.approx(0.5)] * 3


def test_evaluation_schedule_and_mode():
    model = nn.Sequential(nn.Linear(2, 1), nn.Dropout(0.5))
    modes = []

    def eval_fn(m):
        modes.append((m.training, torch.is_grad_enabled()))
        return float(len(modes))

    history = train(
        model, mse, regression_batches(4), steps=10, eval_fn=eval_fn, eval_every=4, progress=False
    )
    assert history.eval_steps == [4, 8, 10]
    assert history.eval_loss == [1.0, 2.0, 3.0]
    assert modes == [(False, False)] * 3
    assert model.training


def test_evaluate_restores_eval_mode():
    model = fresh_model().eval()
    assert evaluate(model, lambda m: 1.5) == 1.5
    assert not model.training


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be"),
        ({"steps": 2.5}, "steps must be"),
        ({"lr": 0.0}, "lr must be"),
        ({"weight_decay": -1.0}, "weight_decay must be"),
        ({"grad_clip": 0.0}, "grad_clip must be"),
        ({"eval_every": -1}, "eval_every must be"),
        ({"schedule": "linear"}, "schedule must be one of"),
        ({"warmup_steps": 6}, r"warmup_steps must be an integer in \[0, steps=5\]"),
        ({"schedule": "cosine", "min_lr": 1.0}, r"min_lr must be in \[0, lr=0.001\]"),
        ({"checkpoint_every": -1}, "checkpoint_every must be an integer >= 0"),
        ({"checkpoint_every": 2}, "checkpoint_every and resume need a checkpoint_path"),
        ({"resume": True}, "checkpoint_every and resume need a checkpoint_path"),
        ({"precision": "fp16"}, r"precision must be one of \('fp32', 'bf16'\), got 'fp16'"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    arguments = {"steps": 5} | kwargs
    with pytest.raises(ValueError, match=message):
        train(fresh_model(), mse, regression_batches(0), progress=False, **arguments)


def test_running_out_of_batches_is_an_error():
    batches = itertools.islice(regression_batches(0), 3)
    with pytest.raises(ValueError, match="ran out after 3 of 5 steps"):
        train(fresh_model(), mse, batches, steps=5, progress=False)


def test_non_scalar_and_non_finite_losses_are_errors():
    batches = regression_batches(0)
    with pytest.raises(ValueError, match="scalar"):
        train(fresh_model(), lambda m, b: m(b[0]), batches, steps=1, progress=False)
    with pytest.raises(FloatingPointError, match="nan"):
        train(
            fresh_model(), lambda m, b: mse(m, b) * float("nan"), batches, steps=1, progress=False
        )


def test_a_model_without_trainable_parameters_is_an_error():
    model = fresh_model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(model, mse, regression_batches(0), steps=1, progress=False)


# --- learning-rate schedule ---------------------------------------------------------------


def test_history_records_the_scheduled_rates():
    settings = {"lr": 0.01, "schedule": "cosine", "warmup_steps": 3, "min_lr": 0.001}
    history = train(fresh_model(), mse, regression_batches(5), steps=10, progress=False, **settings)
    assert history.lr == [lr_at(s, steps=10, **settings) for s in range(1, 11)]
    assert history.lr[2] == 0.01 and history.lr[-1] == pytest.approx(0.001)


def test_the_first_warmup_step_is_an_adamw_step_at_the_warmed_up_rate():
    model, reference = fresh_model(), fresh_model()
    batch = next(regression_batches(2))
    after_first_step = []

    def snapshot(m):
        after_first_step.append([p.detach().clone() for p in m.parameters()])
        return 0.0

    train(
        model,
        mse,
        [batch] * 4,
        steps=4,
        lr=0.1,
        warmup_steps=4,
        grad_clip=None,
        eval_fn=snapshot,
        eval_every=1,
        progress=False,
    )
    optimizer = torch.optim.AdamW(reference.parameters(), lr=0.1 / 4, weight_decay=0.0)
    mse(reference, batch).backward()
    optimizer.step()
    for p, q in zip(after_first_step[0], reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)
    # and not the step at the peak rate: AdamW's first step moves each weight by ~lr
    assert (after_first_step[0][0] - fresh_model().weight).abs().max() < 0.1 / 4 + 1e-6


# --- checkpoints and exact resume -----------------------------------------------------------

STEPS = 12


def classification_batches(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    while True:
        x = torch.randn(8, 4, generator=generator)
        yield x, (x[:, 0] > x[:, 1]).long() + (x[:, 2] > 0).long()


def dropout_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))


def noisy_loss(model, batch):
    """Cross-entropy times a factor drawn from Python's and numpy's global generators, so
    that the losses depend on all three generators a checkpoint must restore."""
    x, y = batch
    noise = 1 + 0.01 * random.random() + 0.01 * float(np.random.rand())  # noqa: NPY002
    return nn.functional.cross_entropy(model(x), y) * noise


def crashing_at(step: int):
    calls = itertools.count(1)

    def loss_fn(model, batch):
        if next(calls) == step:
            raise RuntimeError(f"simulated crash at step {step}")
        return noisy_loss(model, batch)

    return loss_fn


def held_out_loss(model):
    x, y = next(classification_batches(seed=9))
    return nn.functional.cross_entropy(model(x), y)


RUN = {
    "steps": STEPS,
    "lr": 0.01,
    "eval_fn": held_out_loss,
    "eval_every": 3,
    "progress": False,
    "schedule": "cosine",
    "warmup_steps": 2,
    "checkpoint_every": 4,
}


def reseed(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002


def uninterrupted_run(directory):
    reseed(0)
    model = dropout_model()
    history = train(
        model,
        noisy_loss,
        classification_batches(),
        checkpoint_path=directory / "full.pt",
        log_path=directory / "full.jsonl",
        **RUN,
    )
    return model, history


def assert_same_run(model, history, reference_model, reference_history):
    assert history == reference_history  # every loss, norm, rate and evaluation, exactly
    for (name, p), q in zip(
        model.state_dict().items(), reference_model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name


def test_a_crashed_run_resumed_from_its_checkpoint_equals_an_uninterrupted_run(tmp_path):
    reference_model, reference_history = uninterrupted_run(tmp_path)
    path, log = tmp_path / "run.pt", tmp_path / "run.jsonl"
    reseed(0)
    with pytest.raises(RuntimeError, match="simulated crash at step 7"):
        train(
            dropout_model(),
            crashing_at(7),
            classification_batches(),
            checkpoint_path=path,
            log_path=log,
            **RUN,
        )
    assert torch.load(path, weights_only=True)["step"] == 4
    assert len(log.read_text().splitlines()) == 6
    reseed(123)  # the generators are elsewhere now; the checkpoint must put them back
    model = dropout_model(seed=1)  # and the weights
    history = train(
        model,
        noisy_loss,
        classification_batches(),
        checkpoint_path=path,
        log_path=log,
        resume=True,
        **RUN,
    )
    assert_same_run(model, history, reference_model, reference_history)
    assert log.read_text() == (tmp_path / "full.jsonl").read_text()


def test_resuming_without_restoring_the_generators_would_differ(tmp_path):
    # The check above has teeth: dropout and the noise draw from the generators, so a
    # run continued from step 4 with other generator states takes other steps.
    reference_model, reference_history = uninterrupted_run(tmp_path)
    checkpoint = torch.load(tmp_path / "full.pt", weights_only=True)
    reseed(0)
    model = dropout_model()
    model.load_state_dict(checkpoint["model"])
    batches = classification_batches()
    for _ in range(4):
        next(batches)
    history = train(model, noisy_loss, batches, steps=STEPS - 4, lr=0.01, progress=False)
    assert history.train_loss[0] != reference_history.train_loss[4]


def test_a_crash_while_checkpointing_keeps_the_last_checkpoint_and_resumes_exactly(
    tmp_path, monkeypatch
):
    reference_model, reference_history = uninterrupted_run(tmp_path)
    path = tmp_path / "run.pt"
    real_save, saves = torch.save, itertools.count(1)

    def save_that_dies_the_second_time(obj, file):
        if next(saves) < 2:
            return real_save(obj, file)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        file.write(buffer.getvalue()[:1000])
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", save_that_dies_the_second_time)
    reseed(0)
    with pytest.raises(OSError, match="No space left"):
        train(dropout_model(), noisy_loss, classification_batches(), checkpoint_path=path, **RUN)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.jsonl", "full.pt", "run.pt"]
    assert torch.load(path, weights_only=True)["step"] == 4
    model = dropout_model(seed=2)
    history = train(
        model, noisy_loss, classification_batches(), checkpoint_path=path, resume=True, **RUN
    )
    assert_same_run(model, history, reference_model, reference_history)


def test_the_checkpoint_is_plain_data_with_everything_a_resume_needs(tmp_path):
    model, history = uninterrupted_run(tmp_path)
    checkpoint = torch.load(tmp_path / "full.pt", weights_only=True)
    assert set(checkpoint) == {"format", "step", "config", "model", "optimizer", "history", "rng"}
    assert checkpoint["step"] == STEPS
    assert checkpoint["history"]["train_loss"] == history.train_loss
    assert checkpoint["config"] == {
        "steps": STEPS,
        "lr": 0.01,
        "weight_decay": 0.0,
        "grad_clip": 1.0,
        "accumulate": 1,
        "precision": "fp32",
        "world_size": 1,
        "schedule": "cosine",
        "warmup_steps": 2,
        "min_lr": 0.0,
    }
    for name, tensor in model.state_dict().items():
        assert torch.equal(checkpoint["model"][name], tensor)
    assert checkpoint["optimizer"]["state"][0]["step"] == STEPS
    assert len(checkpoint["rng"]) == 1 and set(checkpoint["rng"][0]) == {"torch", "python", "numpy"}


def test_checkpoints_are_written_on_schedule_and_at_the_end(tmp_path, monkeypatch):
    saved_steps = []
    real_save = torch.save

    def recording_save(obj, file):
        saved_steps.append(obj["step"])
        real_save(obj, file)

    monkeypatch.setattr(torch, "save", recording_save)
    settings = {"steps": 10, "progress": False, "checkpoint_path": tmp_path / "c.pt"}
    train(fresh_model(), mse, regression_batches(0), checkpoint_every=4, **settings)
    train(fresh_model(), mse, regression_batches(0), **settings)
    assert saved_steps == [4, 8, 10, 10]


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    reseed(0)
    fresh = train(dropout_model(), noisy_loss, classification_batches(), steps=5, progress=False)
    reseed(0)
    resumed = train(
        dropout_model(),
        noisy_loss,
        classification_batches(),
        steps=5,
        progress=False,
        checkpoint_path=tmp_path / "none.pt",
        resume=True,
    )
    assert resumed == fresh
    assert (tmp_path / "none.pt").exists()


def test_resuming_a_finished_run_trains_no_further(tmp_path):
    model, history = uninterrupted_run(tmp_path)

    def must_not_run(model, batch):
        raise AssertionError("loss_fn called after the last step")

    resumed_model = dropout_model(seed=3)
    resumed = train(
        resumed_model,
        must_not_run,
        classification_batches(),
        checkpoint_path=tmp_path / "full.pt",
        resume=True,
        **RUN,
    )
    assert_same_run(resumed_model, resumed, model, history)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    uninterrupted_run(tmp_path)
    torch.manual_seed(0)
    wider = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))
    message = (
        r"holds a different model: '0.bias' has shape \(16,\) there and \(32,\) here; "
        r"'0.weight' has shape \(16, 4\) there and \(32, 4\) here; "
        r"'3.weight' has shape \(3, 16\) there and \(3, 32\) here"
    )
    with pytest.raises(ValueError, match=message):
        train(
            wider,
            noisy_loss,
            classification_batches(),
            checkpoint_path=tmp_path / "full.pt",
            resume=True,
            **RUN,
        )
    deeper = nn.Sequential(*dropout_model(), nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"'4.bias' is not in the checkpoint"):
        train(
            deeper,
            noisy_loss,
            classification_batches(),
            checkpoint_path=tmp_path / "full.pt",
            resume=True,
            **RUN,
        )


def test_a_checkpoint_of_a_run_with_other_settings_is_refused(tmp_path):
    uninterrupted_run(tmp_path)
    other = RUN | {"steps": 20, "warmup_steps": 5}
    with pytest.raises(ValueError, match="other settings: steps=12 there, 20 here; warmup_steps=2"):
        train(
            dropout_model(),
            noisy_loss,
            classification_batches(),
            checkpoint_path=tmp_path / "full.pt",
            resume=True,
            **other,
        )
    with pytest.raises(ValueError, match="precision='fp32' there, 'bf16' here"):
        train(
            dropout_model(),
            noisy_loss,
            classification_batches(),
            checkpoint_path=tmp_path / "full.pt",
            resume=True,
            precision="bf16",
            **RUN,
        )


def test_a_file_that_is_not_a_training_checkpoint_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="is not a training checkpoint written by train"):
        train(
            fresh_model(),
            mse,
            regression_batches(0),
            steps=2,
            progress=False,
            checkpoint_path=path,
            resume=True,
        )


def test_same_seed_same_run(tmp_path):
    runs = []
    for _ in range(2):
        reseed(0)
        model = dropout_model()
        history = train(
            model, noisy_loss, classification_batches(), **RUN, checkpoint_path=tmp_path / "c.pt"
        )
        runs.append((model, history))
    assert_same_run(*runs[0], *runs[1])


# --- experiment log ---------------------------------------------------------------------


def test_the_log_has_one_record_per_step_matching_the_history(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text("a previous run's log\n")
    history = train(
        fresh_model(),
        mse,
        regression_batches(0),
        steps=6,
        progress=False,
        eval_fn=lambda m: 0.5,
        eval_every=4,
        warmup_steps=2,
        log_path=path,
    )
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in records] == history.train_loss
    assert [r["grad_norm"] for r in records] == history.grad_norm
    assert [r["lr"] for r in records] == [0.0005, 0.001, 0.001, 0.001, 0.001, 0.001]
    assert [r.get("eval_loss") for r in records] == [None, None, None, 0.5, None, 0.5]
    assert set(records[0]) == {"step", "loss", "lr", "grad_norm"}


# --- bf16 autocast --------------------------------------------------------------------------


def test_bf16_autocast_trains_and_keeps_fp32_parameters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 1))
    output_dtypes = []

    def loss_fn(m, batch):
        x, y = batch
        prediction = m(x)
        output_dtypes.append(prediction.dtype)
        return nn.functional.mse_loss(prediction.float(), y)

    def eval_fn(m):
        output_dtypes.append(m(torch.ones(1, 2)).dtype)
        return 0.0

    history = train(
        model,
        loss_fn,
        regression_batches(6),
        steps=150,
        lr=0.02,
        eval_fn=eval_fn,
        progress=False,
        precision="bf16",
    )
    assert set(output_dtypes) == {torch.bfloat16}  # both the loss and the evaluation
    assert sum(history.train_loss[-10:]) / 10 < 0.05 * sum(history.train_loss[:10]) / 10
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {p.grad.dtype for p in model.parameters()} == {torch.float32}
    assert not torch.is_autocast_enabled("cpu")


def test_a_partly_frozen_model_trains_only_its_free_parameters_and_resumes_exactly(tmp_path):
    """LoRA's situation: most parameters frozen. They stay untouched, are not in the
    optimizer, and a crashed run resumes to exactly the uninterrupted one."""

    def frozen_model():
        model = dropout_model()
        model[0].requires_grad_(False)
        return model

    reseed(0)
    reference = frozen_model()
    frozen_before = [p.clone() for p in reference[0].parameters()]
    reference_history = train(
        reference, noisy_loss, classification_batches(), checkpoint_path=tmp_path / "a.pt", **RUN
    )
    for p, q in zip(reference[0].parameters(), frozen_before, strict=True):
        assert torch.equal(p, q)
    assert len(torch.load(tmp_path / "a.pt", weights_only=True)["optimizer"]["state"]) == 2
    reseed(0)
    with pytest.raises(RuntimeError, match="simulated crash at step 6"):
        train(frozen_model(), crashing_at(6), classification_batches(),
              checkpoint_path=tmp_path / "b.pt", **RUN)  # fmt: skip
    reseed(5)
    model = frozen_model()
    history = train(
        model, noisy_loss, classification_batches(), checkpoint_path=tmp_path / "b.pt",
        resume=True, **RUN,
    )  # fmt: skip
    assert_same_run(model, history, reference, reference_history)
