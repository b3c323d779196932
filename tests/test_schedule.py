"""Learning-rate schedules: hand values, torch's own schedulers, and argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

from llmcourse.training import lr_at


def torch_rates(make_scheduler, lr: float, steps: int) -> list[float]:
    """The rate torch's scheduler gives each of ``steps`` updates of a one-parameter SGD."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = make_scheduler(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_constant_schedule_without_warmup_is_the_learning_rate_itself():
    assert [lr_at(s, lr=0.3, steps=5) for s in range(1, 6)] == [0.3] * 5


def test_hand_values_of_warmup_then_cosine():
    def rate(step):
        return lr_at(step, lr=1.0, steps=10, schedule="cosine", warmup_steps=2, min_lr=0.2)

    # warmup: 1/2, 2/2; then cos over 8 steps: 0.2 + 0.8 * (1 + cos(pi * k / 8)) / 2
    assert rate(1) == pytest.approx(0.5)
    assert rate(2) == pytest.approx(1.0)
    assert rate(6) == pytest.approx(0.6)  # halfway: k = 4, cos = 0
    assert rate(4) == pytest.approx(0.2 + 0.4 * (1 + math.sqrt(0.5)))  # k = 2
    assert rate(10) == pytest.approx(0.2)


def test_constant_after_warmup():
    rates = [lr_at(s, lr=0.4, steps=6, warmup_steps=4) for s in range(1, 7)]
    assert rates == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])


def test_the_whole_warmup_run_is_allowed():
    rates = [lr_at(s, lr=1.0, steps=4, schedule="cosine", warmup_steps=4) for s in range(1, 5)]
    assert rates == pytest.approx([0.25, 0.5, 0.75, 1.0])


@pytest.mark.parametrize(
    ("steps", "warmup", "min_lr"), [(20, 5, 0.01), (7, 2, 0.0), (50, 10, 0.05)]
)
def test_warmup_and_cosine_match_torch_sequential_lr(steps, warmup, min_lr):
    lr = 0.1

    def make(optimizer):
        return SequentialLR(
            optimizer,
            [
                LinearLR(optimizer, start_factor=1 / warmup, total_iters=warmup - 1),
                CosineAnnealingLR(optimizer, T_max=steps - warmup, eta_min=min_lr),
            ],
            milestones=[warmup - 1],
        )

    ours = [
        lr_at(s, lr=lr, steps=steps, schedule="cosine", warmup_steps=warmup, min_lr=min_lr)
        for s in range(1, steps + 1)
    ]
    assert ours == pytest.approx(torch_rates(make, lr, steps), rel=1e-12, abs=1e-15)


def test_cosine_without_warmup_matches_cosine_annealing_lr_one_step_ahead():
    # torch's T_cur counts finished updates; our step s has finished s - 1 before it and
    # decays to min_lr *at* the last step, so rate(s) is torch's rate after s updates.
    steps, lr = 12, 0.5
    reference = torch_rates(lambda o: CosineAnnealingLR(o, T_max=steps, eta_min=0.1), lr, steps + 1)
    ours = [
        lr_at(s, lr=lr, steps=steps, schedule="cosine", min_lr=0.1) for s in range(1, steps + 1)
    ]
    assert ours == pytest.approx(reference[1:], rel=1e-12)


def test_constant_with_warmup_matches_linear_lr():
    steps, warmup, lr = 9, 4, 0.2
    reference = torch_rates(
        lambda o: LinearLR(o, start_factor=1 / warmup, total_iters=warmup - 1), lr, steps
    )
    ours = [lr_at(s, lr=lr, steps=steps, warmup_steps=warmup) for s in range(1, steps + 1)]
    assert ours == pytest.approx(reference, rel=1e-12)


@pytest.mark.parametrize(
    ("step", "kwargs", "message"),
    [
        (-1, {}, "step must be an integer >= 0, got -1"),
        (True, {}, "step must be an integer >= 0, got True"),
        (1.0, {}, "step must be an integer"),
        (1, {"steps": 0}, "steps must be an integer >= 1, got 0"),
        (1, {"lr": 0.0}, "lr must be > 0, got 0.0"),
        (1, {"lr": float("nan")}, "lr must be > 0"),
        (1, {"schedule": "linear"}, "schedule must be one of"),
        (1, {"warmup_steps": -1}, r"warmup_steps must be an integer in \[0, steps=10\], got -1"),
        (1, {"warmup_steps": 11}, "warmup_steps must be"),
        (1, {"schedule": "cosine", "min_lr": 2.0}, r"min_lr must be in \[0, lr=1.0\], got 2.0"),
        (1, {"schedule": "cosine", "min_lr": -0.1}, "min_lr must be in"),
        (1, {"min_lr": 0.1}, "min_lr applies only to the cosine schedule"),
    ],
)
def test_bad_arguments_are_rejected(step, kwargs, message):
    arguments = {"lr": 1.0, "steps": 10} | kwargs
    with pytest.raises(ValueError, match=message):
        lr_at(step, **arguments)


def test_every_step_from_zero_on_has_a_rate():
    cosine = dict(lr=1.0, steps=10, schedule="cosine", warmup_steps=2, min_lr=0.1)
    assert lr_at(0, **cosine) == 0.0  # the warmup starts from 0
    assert lr_at(10, **cosine) == pytest.approx(0.1)
    assert [lr_at(s, **cosine) for s in (11, 50, 10**6)] == [pytest.approx(0.1)] * 3
    assert lr_at(0, lr=0.3, steps=5) == 0.3  # no warmup: the rate itself
    assert lr_at(99, lr=0.3, steps=5, warmup_steps=2) == 0.3
    assert lr_at(7, lr=1.0, steps=4, schedule="cosine", warmup_steps=4) == 1.0
