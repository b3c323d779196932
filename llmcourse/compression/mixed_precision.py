"""Mixed-precision training with an fp32 master copy of the weights, step by step
(Micikevicius et al., 2018).

16-bit floats halve the memory of weights and activations and run matrix products
several times faster on accelerators, but they round: bfloat16 keeps 8 significant bits,
so the next number after 1.0 is 1 + 2^-7 and a weight of 1.0 does not move for a step
smaller than 2^-8 (:func:`spacing`, :func:`rounded_away`), and float16's narrow exponent
turns gradients below about 6e-8 into 0. The procedure keeps
what is sensitive in float32:

1. the **master weights** are float32, and are never used in the forward pass;
2. each step casts them to the 16-bit **compute copy**;
3. the forward pass runs in 16 bits, and the loss is computed in float32;
4. the loss is multiplied by a **loss scale** ``k`` (float16 only: bfloat16 has float32's
   range), so that small gradients do not underflow;
5. the backward pass runs in 16 bits;
6. the gradients are cast to float32 and divided by ``k``; a step whose gradients
   overflowed (inf or NaN) is skipped and ``k`` halved;
7. the optimizer (with its float32 moments) updates the master weights;
8. the master weights are cast into the compute copy again.

:class:`MasterWeightTraining` runs exactly these steps on a model of its own in 16 bits.
``llmcourse.training.train(..., precision="bf16")`` gets the same effect differently:
its weights stay float32 and ``torch.autocast`` casts them to bfloat16 inside each matrix
product, so the float32 weights are the master copy and the casts happen per operation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from llmcourse.checks import check_choice, check_int, check_non_negative, check_positive
from llmcourse.training.optim import AdamW, parameter_groups
from llmcourse.training.step import optimizer_step, set_learning_rate

LOW_PRECISIONS = (torch.bfloat16, torch.float16)


class MasterWeightTraining:
    """Train ``model`` in 16 bits with float32 master weights and AdamW on them.

    Args:
        model: the model to train; it is converted, in place, to ``dtype`` (the compute
            copy), after a float32 copy of it is taken as the master.
        dtype: ``torch.bfloat16`` or ``torch.float16``.
        lr: the AdamW learning rate (:meth:`step` may change it at every step).
        weight_decay: AdamW's decoupled decay, on the matrices only.
        loss_scale: the initial loss scale ``k`` (1 for bfloat16; e.g. 2^16 for float16).
        growth_interval: after this many steps without overflow, ``k`` doubles; 0 keeps
            ``k`` fixed (it still halves on an overflow).
        grad_clip: clip the master gradients' global norm; None not to clip.

    Attributes:
        master: the float32 model (the weights to keep).
        model: the compute copy, in ``dtype``.
        loss_scale: the current ``k``.
        skipped: the number of steps skipped because of an overflow.
    """

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype = torch.bfloat16,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        loss_scale: float = 1.0,
        growth_interval: int = 0,
        grad_clip: float | None = 1.0,
    ) -> None:
        check_choice("dtype", dtype, LOW_PRECISIONS)
        check_positive("lr", lr)
        check_non_negative("weight_decay", weight_decay)
        check_positive("loss_scale", loss_scale)
        check_int("growth_interval", growth_interval, minimum=0)
        self.master = copy.deepcopy(model).float()
        self.model = model.to(dtype)
        self.optimizer = AdamW(
            parameter_groups(self.master, weight_decay), lr=lr, weight_decay=weight_decay
        )
        self.loss_scale, self.growth_interval, self.grad_clip = (
            loss_scale,
            growth_interval,
            grad_clip,
        )
        self.skipped, self._good_steps = 0, 0
        self._pairs = [
            (master, compute)
            for master, compute in zip(
                self.master.parameters(), self.model.parameters(), strict=True
            )
            if master.requires_grad
        ]

    def step(
        self, loss_fn: Callable[[nn.Module, Any], Tensor], batch: Any, lr: float | None = None
    ) -> float:
        """One training step on ``batch`` (``loss_fn(model, batch)`` -> scalar loss);
        returns the loss (float32, unscaled). ``lr`` sets the learning rate first."""
        if lr is not None:
            set_learning_rate(self.optimizer, lr)
        self.model.train()
        self.model.zero_grad(set_to_none=True)
        loss = loss_fn(self.model, batch).float()  # 3: 16-bit forward, float32 loss
        (loss * self.loss_scale).backward()  # 4, 5: scaled loss, 16-bit backward
        for master, compute in self._pairs:  # 6: float32 gradients, unscaled
            master.grad = None if compute.grad is None else compute.grad.float() / self.loss_scale
        grads = [m.grad for m, _ in self._pairs if m.grad is not None]
        if not all(bool(torch.isfinite(g).all()) for g in grads):
            self.loss_scale /= 2
            self.skipped += 1
            self._good_steps = 0
            return loss.item()
        optimizer_step(self.optimizer, self.grad_clip)  # 7: the update, in float32
        with torch.no_grad():
            for master, compute in self._pairs:  # 8 (and 2 of the next step): cast back
                compute.copy_(master)
        self._good_steps += 1
        if self.growth_interval and self._good_steps % self.growth_interval == 0:
            self.loss_scale *= 2
        return loss.item()


def rounded_away(before: Tensor, update: Tensor, dtype: torch.dtype = torch.bfloat16) -> float:
    """The fraction of the non-zero entries of ``update`` that are lost when ``before +
    update`` is stored in ``dtype``: the sum rounds back to ``before``'s value in ``dtype``.
    The reason for float32 master weights."""
    check_choice("dtype", dtype, LOW_PRECISIONS)
    moved = update != 0
    if not bool(moved.any()):
        return 0.0
    lost = (before.to(dtype) + update.to(dtype)).to(dtype) == before.to(dtype)
    return float((lost & moved).sum()) / float(moved.sum())


def spacing(value: float, dtype: torch.dtype = torch.bfloat16) -> float:
    """The gap between ``value`` (a normal number, not 0) and the next number of ``dtype``
    away from 0: a step smaller than half of it is rounded away (``2^-7`` at 1.0 in
    bfloat16, ``2^-10`` in float16)."""
    check_choice("dtype", dtype, LOW_PRECISIONS)
    if not (isinstance(value, int | float) and value != 0 and math.isfinite(value)):
        raise ValueError(f"value must be a finite number other than 0, got {value!r}")
    return torch.finfo(dtype).eps * 2.0 ** math.floor(math.log2(abs(value)))
