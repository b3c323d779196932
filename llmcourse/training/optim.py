"""AdamW and gradient clipping, written out, and the parameter groups they act on.

**AdamW** (Kingma and Ba, 2015; Loshchilov and Hutter, 2019) keeps, for every
parameter, running averages of its gradient ``g`` and of the gradient's square, and
steps along their ratio, so that every coordinate moves by about ``lr`` whatever the
scale of its gradient. At step ``t``, with rate ``lr`` and decay ``lambda``::

    theta <- theta - lr * lambda * theta                     (decoupled weight decay)
    m     <- beta1 m + (1 - beta1) g                         (first moment)
    v     <- beta2 v + (1 - beta2) g^2                       (second moment)
    theta <- theta - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

``m`` and ``v`` start at 0, so early averages are biased towards 0; dividing by
``1 - beta^t`` (the bias correction) removes that bias. *Decoupled* decay shrinks the
weights directly instead of adding ``lambda theta`` to the gradient, where Adam's
division by ``sqrt(v)`` would make the decay weaker for parameters with large
gradients. :class:`AdamW` is a ``torch.optim.Optimizer``, so it has parameter groups,
a ``state_dict`` for checkpoints and works with any loop; it takes the same steps as
``torch.optim.AdamW`` (tested).

**Gradient clipping** (Pascanu et al., 2013): :func:`clip_grad_norm` rescales all
gradients together when their global L2 norm exceeds ``max_norm``, which bounds the
size of a step without changing its direction, as ``torch.nn.utils.clip_grad_norm_``.

**Parameter groups** (:func:`parameter_groups`): weight decay pulls weights towards 0,
which regularises the matrices that multiply activations but has no reason to shrink
biases, normalisation gains (whose natural value is 1) or embedding tables (whose rows
of rare tokens get few gradient steps to resist it). So by default only the matrices
of linear layers (and other parameters of two or more dimensions that are not embedding
or position tables) are decayed; parameters that do not require gradients (a frozen
body under LoRA) are left out altogether.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from llmcourse.checks import check_non_negative, check_positive
from llmcourse.modules.positional import LearnedPositions

EMBEDDING_TABLES = (nn.Embedding, LearnedPositions)
"""Modules whose parameters are lookup tables, never weight-decayed."""


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The trainable parameters of ``model`` in two optimizer groups.

    Returns:
        ``[{"params": decayed, "weight_decay": weight_decay}, {"params": others,
        "weight_decay": 0.0}]`` in ``model.named_parameters()`` order (each tensor once,
        however many modules share it); a group without parameters is left out.
        Decayed: parameters with ``ndim >= 2`` that do not belong to an embedding or
        position table (:data:`EMBEDDING_TABLES`). Not decayed: biases, norm gains,
        embedding and position tables. Parameters with ``requires_grad=False`` are in
        neither group.
    """
    check_non_negative("weight_decay", weight_decay)
    tables = {
        id(p)
        for module in model.modules()
        if isinstance(module, EMBEDDING_TABLES)
        for p in module.parameters(recurse=False)
    }
    decayed, others = [], []
    for p in model.parameters():  # each shared (tied) tensor once
        if not p.requires_grad:
            continue
        (decayed if p.ndim >= 2 and id(p) not in tables else others).append(p)
    if not decayed and not others:
        raise ValueError("the model has no trainable parameters")
    groups = [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": others, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay, step by step as in the module docstring.

    Args:
        params: parameters, or parameter groups (dicts with ``"params"`` and any of the
            options below), e.g. from :func:`parameter_groups`.
        lr: the learning rate, > 0 (a schedule sets each group's ``"lr"`` before a step).
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to ``sqrt(v_hat)``, > 0.
        weight_decay: the decoupled decay ``lambda``, >= 0.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        check_positive("lr", lr)
        check_positive("eps", eps)
        check_non_negative("weight_decay", weight_decay)
        if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        """One update of every parameter that has a gradient."""
        if closure is not None:
            raise ValueError("AdamW.step takes no closure")
        for group in self.param_groups:
            lr, (beta1, beta2) = group["lr"], group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                p.mul_(1 - lr * group["weight_decay"])
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denominator = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(group["eps"])
                p.addcdiv_(m, denominator, value=-lr / (1 - beta1**t))


def clip_grad_norm(parameters: Iterable[Tensor], max_norm: float) -> Tensor:
    """Scale the gradients of ``parameters`` in place so that their global L2 norm is at
    most ``max_norm``; return the norm before clipping (a 0-d tensor).

    The scale is ``min(1, max_norm / (norm + 1e-6))`` (``torch.nn.utils.clip_grad_norm_``'s
    rule); ``max_norm = inf`` measures the norm without changing anything. Parameters
    without a gradient are skipped. No value leaves the device (no synchronisation).
    """
    if not (isinstance(max_norm, int | float) and max_norm > 0):
        raise ValueError(f"max_norm must be a number > 0, got {max_norm!r}")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if max_norm < math.inf:
        scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.to(g.dtype))
    return norm
