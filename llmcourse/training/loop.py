"""A small, deterministic training loop shared by every chapter that trains a model.

``train`` runs :class:`~llmcourse.training.optim.AdamW` for a fixed number of steps on
batches drawn from an iterator, clips the gradient norm, evaluates every
``eval_every`` steps, shows a progress bar, and returns the loss history. The model,
the batches and the loss are the caller's: ``loss_fn(model, batch)`` returns a scalar
tensor. Seed the model's initialisation and the batch sampler, and the whole run is
repeatable on a CPU.

It is written from the pieces a chapter uses for a loop of its own (a PPO or DPO step,
LoRA training a few parameters), so that both have the same guarantees:
:func:`~llmcourse.training.optim.parameter_groups` (weight decay on matrices only,
frozen parameters left out), :func:`~llmcourse.training.schedule.lr_at`,
:func:`~llmcourse.training.step.accumulate_gradients` and
:func:`~llmcourse.training.step.optimizer_step`, :func:`evaluate`,
:mod:`~llmcourse.training.log` and :mod:`~llmcourse.training.checkpoint`.

Optional, keyword-only, and off by default:

- a learning-rate schedule, linear warmup then constant or cosine decay;
- gradient accumulation over ``accumulate`` batches per update;
- checkpoints written atomically every ``checkpoint_every`` steps and at the end, and an
  exact resume from them;
- a JSON-lines experiment log, one record per step;
- bf16 autocast on CPU (``precision="bf16"``);
- data parallelism when ``torch.distributed`` is initialised, e.g. by ``torchrun``
  (:mod:`llmcourse.training.distributed`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from llmcourse.checks import check_int, check_non_negative, check_positive
from llmcourse.training import distributed
from llmcourse.training.checkpoint import (
    CHECKPOINT_FORMAT,
    check_resumable,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from llmcourse.training.evaluate import evaluate
from llmcourse.training.log import History, experiment_log, write_record
from llmcourse.training.optim import AdamW, parameter_groups
from llmcourse.training.schedule import lr_at
from llmcourse.training.step import (
    PRECISIONS,
    accumulate_gradients,
    optimizer_step,
    precision_context,
    set_learning_rate,
)

# A progress bar without timings, so that a rendered notebook is the same on every run.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} {postfix}"


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
    accumulate: int = 1,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    log_path: str | os.PathLike | None = None,
    precision: str = "fp32",
) -> History:
    """Train ``model`` for ``steps`` AdamW updates.

    Args:
        model: the module to train (switched to train mode), trained in place. Only its
            parameters that require gradients are trained.
        loss_fn: ``loss_fn(model, batch)`` -> scalar loss tensor. Under data parallelism
            it receives the ``DistributedDataParallel`` wrapper: call it (``model(x)``)
            so that the gradients are averaged across ranks; the module itself is
            ``model.module``.
        batches: yields ``accumulate`` batches per update; it must not run out before
            the last update. To resume, it must yield the same batches again (e.g. drawn
            with a seeded ``torch.Generator`` created afresh): the completed steps'
            batches are drawn and skipped. Under data parallelism each rank's ``batches``
            yields that rank's shard of the global batch (see
            :func:`llmcourse.training.distributed.shard`).
        steps: number of optimisation steps, >= 1.
        lr: the AdamW learning rate (the peak rate when there is a warmup), > 0.
        weight_decay: AdamW decoupled weight decay, >= 0, applied to the matrices only
            (:func:`~llmcourse.training.optim.parameter_groups`).
        grad_clip: clip the global gradient norm to this value; None to not clip.
        eval_fn: ``eval_fn(model)`` -> float, run without gradients in eval mode
            every ``eval_every`` steps and after the last step. Under data parallelism
            every rank runs it and the results are averaged: give each rank an equal
            shard of the evaluation data, or all of it.
        eval_every: evaluation period in steps; 0 evaluates only at the end.
        progress: show a tqdm progress bar with the running loss (rank 0 only).
        desc: the progress bar's label.
        schedule: "constant" or "cosine", the learning rate after the warmup (see
            :func:`llmcourse.training.schedule.lr_at`).
        warmup_steps: number of steps of linear warmup from 0 to ``lr``,
            0 <= warmup_steps <= steps.
        min_lr: the learning rate the cosine schedule reaches at the last step,
            0 <= min_lr <= lr.
        accumulate: batches per update, >= 1; their gradients are averaged
            (:func:`~llmcourse.training.step.accumulate_gradients`), and the recorded
            loss is their mean.
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
            accumulation, precision and number of processes, or a ValueError says what
            differs.
        log_path: a JSON-lines file that gets one record per step: ``step``, ``loss``,
            ``lr``, ``grad_norm`` and, after an evaluation, ``eval_loss``. A new run
            overwrites it; a resumed run keeps the records up to the checkpoint's step.
        precision: "fp32", or "bf16" to compute ``loss_fn`` and ``eval_fn`` under
            bfloat16 autocast (:func:`~llmcourse.training.step.precision_context`).

    Returns:
        The :class:`~llmcourse.training.log.History` of the run (of the whole run when
        resumed).
    """
    check_int("steps", steps)
    check_positive("lr", lr)
    check_non_negative("weight_decay", weight_decay)
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip!r}")
    check_int("eval_every", eval_every, minimum=0)
    check_int("accumulate", accumulate)
    schedule_args = {"schedule": schedule, "warmup_steps": warmup_steps, "min_lr": min_lr}
    lr_at(0, lr=lr, steps=steps, **schedule_args)  # validates the schedule's arguments
    check_int("checkpoint_every", checkpoint_every, minimum=0)
    if checkpoint_path is None and (checkpoint_every or resume):
        raise ValueError("checkpoint_every and resume need a checkpoint_path")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    optimizer = AdamW(parameter_groups(model, weight_decay), lr=lr, weight_decay=weight_decay)
    config = {
        "steps": steps,
        "lr": lr,
        "weight_decay": weight_decay,
        "grad_clip": grad_clip,
        "accumulate": accumulate,
        "precision": precision,
        "world_size": distributed.world_size(),
        **schedule_args,
    }
    history, start, rng = History(), 0, None
    if resume and Path(checkpoint_path).exists():
        checkpoint = load_checkpoint(checkpoint_path)
        check_resumable(checkpoint, model, config, checkpoint_path)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        history, start = History(**checkpoint["history"]), checkpoint["step"]
        rng = checkpoint["rng"][distributed.rank()]
    batch_iter = iter(batches)
    for _ in range(start * accumulate):  # the batches of the completed steps
        _next_batch(batch_iter, start, steps)
    if rng is not None:  # after skipping, in case the batches draw from the global generators
        set_rng_state(rng)
    training_model = DistributedDataParallel(model) if distributed.is_initialized() else model
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
    with experiment_log(log_path if main else None, start) as log:
        for step in bar:
            step_lr = lr_at(step, lr=lr, steps=steps, **schedule_args)
            set_learning_rate(optimizer, step_lr)
            microbatches = [_next_batch(batch_iter, step, steps) for _ in range(accumulate)]
            optimizer.zero_grad(set_to_none=True)
            loss = accumulate_gradients(loss_fn, training_model, microbatches, precision)
            mean_loss = distributed.mean_across_ranks(loss)
            if not torch.isfinite(mean_loss):
                raise FloatingPointError(f"the loss is {mean_loss.item()} at step {step}")
            norm = optimizer_step(optimizer, grad_clip)
            record = {
                "step": step,
                "loss": mean_loss.item(),
                "lr": step_lr,
                "grad_norm": norm.item(),
            }
            if eval_fn is not None and ((eval_every and step % eval_every == 0) or step == steps):
                with precision_context(next(model.parameters()).device.type, precision):
                    record["eval_loss"] = _evaluate_on_every_rank(model, eval_fn)
            history.record(record)
            write_record(log, record)
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


def _evaluate_on_every_rank(model: nn.Module, eval_fn: Callable[[nn.Module], float]) -> float:
    value = evaluate(model, eval_fn)
    if not distributed.is_initialized():
        return value
    return distributed.mean_across_ranks(torch.tensor(value, dtype=torch.float64)).item()
