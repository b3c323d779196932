"""Learning-rate schedules: linear warmup from 0, then a constant rate or a cosine decay.

Steps are numbered like the updates of :func:`llmcourse.training.train`: update ``s``
(from 1) uses ``lr_at(s, ...)``, and step 0 is the state before the first update. During
``warmup_steps`` updates the rate rises linearly from 0, ``lr * s / warmup_steps``, and
reaches ``lr`` at the last warmup update. The cosine schedule then decays it to
``min_lr`` at the final update ``steps``:

    lr_s = min_lr + (lr - min_lr) * (1 + cos(pi * (s - warmup_steps) / (steps - warmup_steps))) / 2

Every step from 0 on has a rate: 0 at step 0 when there is a warmup (``lr`` without one),
and after the last scheduled step the final rate holds (``min_lr`` for the cosine, ``lr``
for the constant schedule), so a run extended past its schedule keeps a sensible rate.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def lr_at(
    step: int,
    *,
    lr: float,
    steps: int,
    schedule: str = "constant",
    warmup_steps: int = 0,
    min_lr: float = 0.0,
) -> float:
    """The learning rate of update ``step`` of a run of ``steps`` updates.

    Args:
        step: the update number, an integer >= 0 (0 is before the first update; steps
            past ``steps`` get the final rate).
        lr: the peak learning rate, > 0, reached at the end of the warmup.
        steps: the total number of updates of the run, >= 1.
        schedule: "constant" keeps ``lr`` after the warmup; "cosine" decays it to
            ``min_lr`` at update ``steps``.
        warmup_steps: number of updates of the linear warmup, 0 <= warmup_steps <= steps.
        min_lr: the final learning rate of the cosine schedule, 0 <= min_lr <= lr; it must
            stay 0 for the constant schedule.

    Returns:
        The learning rate as a float.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not isinstance(warmup_steps, int) or not 0 <= warmup_steps <= steps:
        raise ValueError(
            f"warmup_steps must be an integer in [0, steps={steps}], got {warmup_steps!r}"
        )
    if not 0 <= min_lr <= lr:
        raise ValueError(f"min_lr must be in [0, lr={lr}], got {min_lr!r}")
    if schedule == "constant" and min_lr != 0:
        raise ValueError(f"min_lr applies only to the cosine schedule, got {min_lr!r}")
    if warmup_steps and step <= warmup_steps:
        return lr * step / warmup_steps
    if schedule == "constant" or steps == warmup_steps:
        return lr
    progress = min(step - warmup_steps, steps - warmup_steps) / (steps - warmup_steps)
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2
