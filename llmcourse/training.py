"""A small, deterministic training loop shared by every chapter that trains a model.

``train`` runs AdamW for a fixed number of steps on batches drawn from an iterator,
clips the gradient norm, evaluates every ``eval_every`` steps, shows a progress bar,
and returns the loss history. The model, the batches and the loss are the caller's:
``loss_fn(model, batch)`` returns a scalar tensor. Seed the model's initialisation
and the batch sampler, and the whole run is repeatable on a CPU.

Optional, keyword-only, and off by default (the defaults reproduce the plain loop
bit for bit):

- a learning-rate schedule, linear warmup then constant or cosine decay
  (:func:`llmcourse.schedule.lr_at`);
- checkpoints written atomically every ``checkpoint_every`` steps and at the end, and an
  exact resume from them (:mod:`llmcourse.checkpoint`);
- a JSON-lines experiment log, one record per step;
- bf16 autocast on CPU (``precision="bf16"``);
- data parallelism when ``torch.distributed`` is initialised, e.g. by ``torchrun``
  (:mod:`llmcourse.distributed`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from llmcourse import distributed
from llmcourse.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from llmcourse.schedule import lr_at

# A progress bar without timings, so that a rendered notebook is the same on every run.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} {postfix}"
PRECISIONS = ("fp32", "bf16")
CHECKPOINT_FORMAT = 1


@dataclass
class History:
    """Per-step training loss, gradient norm (before clipping) and learning rate, and
    the evaluations (the steps they ran after and their values)."""

    train_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)


@torch.no_grad()
def evaluate(model: nn.Module, eval_fn: Callable[[nn.Module], float]) -> float:
    """``eval_fn(model)`` in eval mode without gradients; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        return float(eval_fn(model))
    finally:
        model.train(was_training)


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    batches: Iterable[Any],
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    grad_clip: float | None = 1.0,
    eval_fn: Callable[[nn.Module], float] | None = None,
    eval_every: int = 0,
    progress: bool = True,
    desc: str = "training",
    *,
    schedule: str = "constant",
    warmup_steps: int = 0,
    min_lr: float = 0.0,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    log_path: str | os.PathLike | None = None,
    precision: str = "fp32",
) -> History:
    """Train ``model`` for ``steps`` AdamW steps.

    Args:
        model: the module to train (switched to train mode), trained in place.
        loss_fn: ``loss_fn(model, batch)`` -> scalar loss tensor. Under data parallelism
            it receives the ``DistributedDataParallel`` wrapper: call it (``model(x)``)
            so that the gradients are averaged across ranks; the module itself is
            ``model.module``.
        batches: yields one batch per step; it must not run out before ``steps``. To
            resume, it must yield the same batches again (e.g. drawn with a seeded
            ``torch.Generator`` created afresh): the completed steps' batches are drawn
            and skipped. Under data parallelism each rank's ``batches`` yields that
            rank's shard of the global batch (see :func:`llmcourse.distributed.shard`).
        steps: number of optimisation steps, >= 1.
        lr: the AdamW learning rate (the peak rate when there is a warmup), > 0.
        weight_decay: AdamW decoupled weight decay, >= 0.
        grad_clip: clip the global gradient norm to this value; None to not clip.
        eval_fn: ``eval_fn(model)`` -> float, run without gradients in eval mode
            every ``eval_every`` steps and after the last step. Under data parallelism
            every rank runs it and the results are averaged: give each rank an equal
            shard of the evaluation data, or all of it.
        eval_every: evaluation period in steps; 0 evaluates only at the end.
        progress: show a tqdm progress bar with the running loss (rank 0 only).
        desc: the progress bar's label.
        schedule: "constant" or "cosine", the learning rate after the warmup (see
            :func:`llmcourse.schedule.lr_at`).
        warmup_steps: number of steps of linear warmup from ``lr / warmup_steps`` to
            ``lr``, 0 <= warmup_steps <= steps.
        min_lr: the learning rate the cosine schedule reaches at the last step,
            0 <= min_lr <= lr.
        checkpoint_path: file to save the training state to, after every
            ``checkpoint_every`` steps and after the last step; None saves nothing.
            The file is replaced atomically and holds plain data only: model and
            optimizer states, the step, the history, the random number generators'
            states and the run's settings.
        checkpoint_every: checkpoint period in steps; 0 saves only at the end.
        resume: continue from ``checkpoint_path`` if the file exists (start afresh if it
            does not): restore the state, skip the completed steps' batches, and train
            the remaining steps, giving exactly the losses and parameters of an
            uninterrupted run. The model must have the same parameter names and shapes,
            and the run the same ``steps``, learning-rate, weight decay, clipping,
            precision and number of processes, or a ValueError says what differs.
        log_path: a JSON-lines file that gets one record per step: ``step``, ``loss``,
            ``lr``, ``grad_norm`` and, after an evaluation, ``eval_loss``. A new run
            overwrites it; a resumed run keeps the records up to the checkpoint's step.
        precision: "fp32", or "bf16" to compute ``loss_fn`` and ``eval_fn`` under
            bfloat16 autocast. The parameters, gradients and optimizer state stay fp32;
            bf16 has fp32's exponent range, so no loss scaling is needed (float16 would
            need it, to keep small gradients from underflowing to zero).

    Returns:
        The :class:`History` of the run (of the whole run when resumed).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip!r}")
    if not isinstance(eval_every, int) or eval_every < 0:
        raise ValueError(f"eval_every must be an integer >= 0, got {eval_every!r}")
    schedule_args = {"schedule": schedule, "warmup_steps": warmup_steps, "min_lr": min_lr}
    lr_at(1, lr=lr, steps=steps, **schedule_args)  # validates the schedule's arguments
    if not isinstance(checkpoint_every, int) or checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be an integer >= 0, got {checkpoint_every!r}")
    if checkpoint_path is None and (checkpoint_every or resume):
        raise ValueError("checkpoint_every and resume need a checkpoint_path")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    config = {
        "steps": steps,
        "lr": lr,
        "weight_decay": weight_decay,
        "grad_clip": grad_clip,
        "precision": precision,
        "world_size": distributed.world_size(),
        **schedule_args,
    }
    history, start, rng = History(), 0, None
    if resume and Path(checkpoint_path).exists():
        checkpoint = load_checkpoint(checkpoint_path)
        _check_resumable(checkpoint, model, config, checkpoint_path)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        history, start = History(**checkpoint["history"]), checkpoint["step"]
        rng = checkpoint["rng"][distributed.rank()]
    batch_iter = iter(batches)
    for skipped in range(start):
        _next_batch(batch_iter, skipped + 1, steps)
    if rng is not None:  # after skipping, in case the batches draw from the global generators
        set_rng_state(rng)
    training_model = DistributedDataParallel(model) if distributed.is_initialized() else model
    autocast = _autocast(parameters[0].device.type, precision)
    main = distributed.is_main()
    model.train()
    bar = tqdm(
        range(start + 1, steps + 1),
        initial=start,
        total=steps,
        desc=desc,
        disable=not (progress and main),
        bar_format=BAR_FORMAT,
    )
    with _experiment_log(log_path if main else None, start) as log:
        for step in bar:
            batch = _next_batch(batch_iter, step, steps)
            step_lr = lr_at(step, lr=lr, steps=steps, **schedule_args)
            for group in optimizer.param_groups:
                group["lr"] = step_lr
            with autocast:
                loss = loss_fn(training_model, batch)
            if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                raise ValueError("loss_fn must return a scalar tensor")
            mean_loss = distributed.mean_across_ranks(loss)
            if not torch.isfinite(mean_loss):
                raise FloatingPointError(f"the loss is {mean_loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(parameters, grad_clip or math.inf)
            optimizer.step()
            record = {
                "step": step,
                "loss": mean_loss.item(),
                "lr": step_lr,
                "grad_norm": norm.item(),
            }
            history.train_loss.append(record["loss"])
            history.grad_norm.append(record["grad_norm"])
            history.lr.append(step_lr)
            if eval_fn is not None and ((eval_every and step % eval_every == 0) or step == steps):
                with autocast:
                    record["eval_loss"] = _evaluate_on_every_rank(model, eval_fn)
                history.eval_steps.append(step)
                history.eval_loss.append(record["eval_loss"])
            if log is not None:
                log.write(json.dumps(record) + "\n")
                log.flush()
            if checkpoint_path is not None and (
                (checkpoint_every and step % checkpoint_every == 0) or step == steps
            ):
                state = {
                    "format": CHECKPOINT_FORMAT,
                    "step": step,
                    "config": config,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": asdict(history),
                    "rng": distributed.gather_objects(rng_state()),  # every rank's
                }
                if main:
                    save_checkpoint(state, checkpoint_path)
            if step % 10 == 0 or step == steps:
                bar.set_postfix(loss=f"{record['loss']:.3f}", refresh=False)
    return history


def _next_batch(batch_iter: Iterator[Any], step: int, steps: int) -> Any:
    try:
        return next(batch_iter)
    except StopIteration:
        raise ValueError(f"batches ran out after {step - 1} of {steps} steps") from None


def _autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager:
    """A reusable context: bfloat16 autocast for "bf16", nothing for "fp32"."""
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _evaluate_on_every_rank(model: nn.Module, eval_fn: Callable[[nn.Module], float]) -> float:
    value = evaluate(model, eval_fn)
    if not distributed.is_initialized():
        return value
    return distributed.mean_across_ranks(torch.tensor(value, dtype=torch.float64)).item()


def _check_resumable(
    checkpoint: dict[str, Any],
    model: nn.Module,
    config: dict[str, Any],
    path: str | os.PathLike,
) -> None:
    """Refuse a checkpoint of another model or of a run with other settings."""
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a training checkpoint written by train")
    saved_config = checkpoint["config"]
    differences = [
        f"{name}={saved_config.get(name)!r} there, {value!r} here"
        for name, value in config.items()
        if saved_config.get(name) != value
    ]
    if differences:
        raise ValueError(
            f"cannot resume from {str(path)!r}: it was written by a run with other "
            f"settings: {'; '.join(differences)}"
        )
    saved = {name: tuple(tensor.shape) for name, tensor in checkpoint["model"].items()}
    current = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    problems = [f"{name!r} is missing here" for name in saved.keys() - current.keys()]
    problems += [f"{name!r} is not in the checkpoint" for name in current.keys() - saved.keys()]
    problems += [
        f"{name!r} has shape {saved[name]} there and {current[name]} here"
        for name in saved.keys() & current.keys()
        if saved[name] != current[name]
    ]
    if problems:
        raise ValueError(
            f"cannot resume from {str(path)!r}: it holds a different model: "
            + "; ".join(sorted(problems))
        )


@contextlib.contextmanager
def _experiment_log(path: str | os.PathLike | None, start: int) -> Iterator[TextIO | None]:
    """The JSON-lines log opened for writing, keeping the records of steps <= ``start``."""
    if path is None:
        yield None
        return
    path = Path(path)
    kept = []
    if start and path.exists():
        kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= start]
    with path.open("w") as log:
        log.writelines(line + "\n" for line in kept)
        log.flush()
        yield log
