"""Pruning: removing weights (unstructured) or whole neurons (structured), and keeping them
removed while the rest is trained again.

**Magnitude pruning** removes the fraction ``s`` (the *sparsity*) of weights closest to 0,
within each matrix (:func:`magnitude_mask`, layer-wise) or over all matrices at once
(:func:`global_magnitude_masks`, which lets layers keep different shares). The weights
that stay are then trained again to recover what was lost (Han et al., 2015).

**Movement pruning** (Sanh et al., 2020) keeps instead the weights that move *away* from 0
during fine-tuning. With gradient steps ``Delta W = -eta dL/dW``, a weight grows in
magnitude when ``-W dL/dW > 0``; the score of each weight accumulates that quantity over
the fine-tuning steps, ``S = -sum_t W_t * dL/dW_t`` (:class:`MovementScores`), and the
lowest scores are pruned. Magnitude pruning keeps what pretraining made large;
movement pruning keeps what the new task makes large, which matters most at high
sparsity when the task differs from pretraining.

Pruning by a mask leaves the matrix its shape, with zeros in it: it saves memory only in
a sparse format (:func:`sparse_nbytes`) and time only with kernels that skip zeros, which
pay off at high sparsity. **Structured pruning** removes whole units instead, here the
hidden neurons of the feed-forward networks (:func:`prune_ffn_neurons`): the matrices
become smaller, and every dense kernel runs faster.

:func:`prune` zeroes the pruned weights and zeroes their gradients from then on, so
that re-training with a fresh AdamW leaves them at exactly 0 (their moments stay 0, and
weight decay keeps 0 at 0). :func:`cubic_sparsity` is the gradual schedule of Zhu and
Gupta (2017), which both papers use to prune during training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from llmcourse.checks import check_float_tensor, check_int, check_probability
from llmcourse.modules.feedforward import FeedForward, SwiGLU


def keep_top(scores: Tensor, sparsity: float) -> Tensor:
    """A bool mask of ``scores``' shape, True at the kept entries: the ``round(sparsity *
    n)`` lowest scores are pruned (ties: the earlier entry in flattened order first).

    Raises:
        ValueError: ``sparsity`` outside ``[0, 1)``.
    """
    check_float_tensor("scores", scores)
    check_probability("sparsity", sparsity)
    n_pruned = round(sparsity * scores.numel())
    order = scores.flatten().argsort(stable=True)
    mask = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    mask[order[:n_pruned]] = False
    return mask.view(scores.shape)


def magnitude_mask(weight: Tensor, sparsity: float) -> Tensor:
    """Layer-wise magnitude pruning: keep all but the ``round(sparsity * n)`` weights of
    smallest ``|w|``; a bool mask of ``weight``'s shape, True = kept."""
    return keep_top(weight.detach().abs(), sparsity)


def _global(scores: Mapping[str, Tensor], sparsity: float) -> dict[str, Tensor]:
    if not scores:
        raise ValueError("give at least one tensor to prune")
    flat = keep_top(torch.cat([s.flatten() for s in scores.values()]), sparsity)
    sizes = [s.numel() for s in scores.values()]
    return {
        name: part.view(s.shape)
        for (name, s), part in zip(scores.items(), flat.split(sizes), strict=True)
    }


def global_magnitude_masks(weights: Mapping[str, Tensor], sparsity: float) -> dict[str, Tensor]:
    """Global magnitude pruning: the ``round(sparsity * N)`` smallest ``|w|`` among all
    ``N`` weights of ``weights`` (name -> tensor) are pruned; returns the masks by name."""
    return _global({name: w.detach().abs() for name, w in weights.items()}, sparsity)


def layerwise_magnitude_masks(weights: Mapping[str, Tensor], sparsity: float) -> dict[str, Tensor]:
    """:func:`magnitude_mask` of every tensor of ``weights``, each at ``sparsity``."""
    return {name: magnitude_mask(w, sparsity) for name, w in weights.items()}


def mask_sparsity(masks: Mapping[str, Tensor]) -> float:
    """The fraction of pruned (False) entries over all masks."""
    total = sum(m.numel() for m in masks.values())
    return 1 - sum(int(m.sum()) for m in masks.values()) / total


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weights of the linear layers of ``model``'s Transformer blocks, by parameter
    name: what the pruning papers prune. Embeddings (and an output layer tied to them),
    biases and norms are left alone."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return {
        f"{name}.weight": module.weight
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and id(module.weight) not in embeddings
    }


@dataclass
class Pruned:
    """What :func:`prune` did: the masks by parameter name, and the gradient hooks that
    keep the pruned weights at 0 (``remove()`` them to let the weights train again)."""

    masks: dict[str, Tensor]
    handles: list[RemovableHandle] = field(default_factory=list)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


@torch.no_grad()
def prune(model: nn.Module, masks: Mapping[str, Tensor]) -> Pruned:
    """Zero the weights of ``model`` where ``masks`` (parameter name -> bool mask, True =
    kept) are False, and from now on zero their gradients too.

    Raises:
        ValueError: a name that is not a parameter of ``model``, or a mask of another shape.
    """
    params = dict(model.named_parameters())
    pruned = Pruned({})
    for name, mask in masks.items():
        if name not in params:
            raise ValueError(f"the model has no parameter {name!r}")
        param = params[name]
        if mask.shape != param.shape or mask.dtype != torch.bool:
            raise ValueError(
                f"the mask of {name!r} must be a bool tensor of shape {tuple(param.shape)}, "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )
        mask = mask.to(param.device)
        param.mul_(mask)
        pruned.masks[name] = mask
        pruned.handles.append(param.register_hook(lambda grad, m=mask: grad * m))
    return pruned


class MovementScores:
    """Movement scores ``S = -sum_t W_t * dL/dW_t`` of some parameters, accumulated at
    every backward pass from creation until :meth:`remove` (Sanh et al., 2020).

    Args:
        params: the parameters to score, by name (e.g. :func:`prunable_weights`).

    Attributes:
        scores: ``{name: tensor}``, float32 on each parameter's device.
    """

    def __init__(self, params: Mapping[str, nn.Parameter]) -> None:
        if not params:
            raise ValueError("give at least one parameter to score")
        self.scores = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
        self._handles = [
            p.register_hook(lambda grad, p=p, s=self.scores[name]: self._add(p, grad, s))
            for name, p in params.items()
        ]

    @staticmethod
    def _add(param: Tensor, grad: Tensor, score: Tensor) -> None:
        score.sub_(param.detach().float() * grad.detach().float())

    def masks(self, sparsity: float, scope: str = "layer") -> dict[str, Tensor]:
        """Keep the highest scores: ``scope="layer"`` prunes ``sparsity`` of each tensor,
        ``"global"`` of all of them together."""
        if scope == "global":
            return _global(self.scores, sparsity)
        if scope != "layer":
            raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
        return {name: keep_top(s, sparsity) for name, s in self.scores.items()}

    def remove(self) -> None:
        """Stop accumulating (the scores stay)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def cubic_sparsity(step: int, steps: int, final: float, initial: float = 0.0) -> float:
    """Zhu and Gupta's gradual schedule: ``s_t = s_f + (s_i - s_f) (1 - t / T)^3`` for
    step ``t`` of ``T`` (``t = 0 .. T``): fast pruning at first, slower towards the end,
    when the network has fewer redundant weights left."""
    check_int("steps", steps)
    check_int("step", step, minimum=0)
    if step > steps:
        raise ValueError(f"step must be in [0, {steps}], got {step}")
    check_probability("final", final)
    check_probability("initial", initial)
    return final + (initial - final) * (1 - step / steps) ** 3


def ffn_neuron_scores(ffn: FeedForward | SwiGLU) -> Tensor:
    """``(d_ff,)``: the importance of each hidden neuron of a feed-forward network, the
    norm of the weights into it times the norm of the weights out of it,
    ``||W_up[i, :]|| ||W_down[:, i]||`` (for SwiGLU the gate's row counts too)."""
    into = ffn.up.weight.detach().norm(dim=1)
    if isinstance(ffn, SwiGLU):
        into = into * ffn.gate.weight.detach().norm(dim=1)
    return into * ffn.down.weight.detach().norm(dim=0)


def _shrink(linear: nn.Linear, index: Tensor, dim: int) -> nn.Linear:
    """A copy of ``linear`` with only the rows (``dim=0``) or columns (``dim=1``) ``index``."""
    weight = linear.weight.detach().index_select(dim, index)
    out_features, in_features = weight.shape
    bias = linear.bias is not None
    new = nn.Linear(in_features, out_features, bias=bias, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias:
            new.bias.copy_(linear.bias if dim == 1 else linear.bias[index])
    return new


@torch.no_grad()
def prune_ffn_neurons(ffn: FeedForward | SwiGLU, fraction: float) -> Tensor:
    """Structured pruning: remove the ``round(fraction * d_ff)`` hidden neurons of lowest
    :func:`ffn_neuron_scores` from ``ffn``, in place (its matrices shrink to the kept
    neurons, in their original order). Returns the indices kept.

    Raises:
        ValueError: ``fraction`` outside ``[0, 1)``.
    """
    if not isinstance(ffn, FeedForward | SwiGLU):
        raise TypeError(f"ffn must be a FeedForward or SwiGLU, got {type(ffn).__name__}")
    keep = keep_top(ffn_neuron_scores(ffn), fraction).nonzero().flatten()
    ffn.up = _shrink(ffn.up, keep, 0)
    if isinstance(ffn, SwiGLU):
        ffn.gate = _shrink(ffn.gate, keep, 0)
    ffn.down = _shrink(ffn.down, keep, 1)
    return keep


def sparse_nbytes(mask: Tensor, value_bytes: int = 4, index_bytes: int = 4) -> dict[str, int]:
    """The storage of a matrix pruned by ``mask`` (``(rows, cols)``, True = kept) in three
    formats: ``"dense"`` (every number, zeros too), ``"csr"`` (the kept values, their
    column indices and ``rows + 1`` row offsets) and ``"bitmap"`` (one bit per entry and
    the kept values)."""
    if mask.dtype != torch.bool or mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D bool tensor, got {mask.dtype} {mask.ndim}-D")
    check_int("value_bytes", value_bytes)
    check_int("index_bytes", index_bytes)
    kept, rows = int(mask.sum()), mask.shape[0]
    return {
        "dense": mask.numel() * value_bytes,
        "csr": kept * (value_bytes + index_bytes) + (rows + 1) * index_bytes,
        "bitmap": math.ceil(mask.numel() / 8) + kept * value_bytes,
    }
