"""LoRA: a frozen linear layer plus a trained low-rank update (Hu et al., 2022).

Fine-tuning changes a pretrained weight ``W_0`` by some ``Delta W``. LoRA assumes that
the change has low rank and trains it in factored form, ``Delta W = (alpha / r) B A``,
with ``A: (r, in_features)`` and ``B: (out_features, r)``, while ``W_0`` stays frozen::

    h = W_0 x + b + (alpha / r) B A dropout(x).

``B`` starts at zero, so the wrapped layer starts as the pretrained one; ``A`` starts
random (PyTorch's and Hugging Face ``peft``'s default, Kaiming-uniform), so that ``B``
gets a useful gradient at the first step. ``alpha / r`` keeps the size of the update
about the same when the rank changes, so a learning rate tuned for one rank works for
others. A layer of ``d_in x d_out`` weights gets ``r (d_in + d_out)`` trained numbers
instead of ``d_in d_out``.

After training, :meth:`LoRALinear.merge` adds ``(alpha / r) B A`` into ``W_0``: the
layer is then a plain linear layer again, and inference costs nothing extra.
:meth:`LoRALinear.unmerge` subtracts it (up to rounding), to train on or to swap in
another task's update.

:func:`apply_lora` wraps the linear layers of a model chosen by name (``"w_q"`` matches
every ``....attn.w_q``, as ``target_modules`` does in ``peft``) and freezes every other
parameter. ``tests/test_lora_peft_parity.py`` checks outputs and merged weights against
``peft``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from llmcourse.checks import check_int, check_positive, check_probability
from llmcourse.peft.trainable import freeze


class LoRALinear(nn.Module):
    """A frozen linear layer ``base`` plus ``(alpha / r) B A``.

    Args:
        base: the layer to adapt: an ``nn.Linear``, or any module with ``in_features``,
            ``out_features`` and a forward ``(..., in_features) -> (..., out_features)``
            (a quantized linear layer, for QLoRA). Its parameters are frozen.
        r: the rank of the update, >= 1.
        alpha: the update is scaled by ``alpha / r``; None means ``alpha = r`` (scale 1).
        dropout: dropout on the input of the low-rank path while training.

    Parameters: ``lora_A: (r, in_features)``, ``lora_B: (out_features, r)`` (zeros), on
    the base layer's device, in float32 or the base weight's floating dtype.
    """

    def __init__(
        self, base: nn.Module, r: int, alpha: float | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        check_int("r", r)
        alpha = float(r) if alpha is None else alpha
        check_positive("alpha", alpha)
        check_probability("dropout", dropout)
        if not all(hasattr(base, name) for name in ("in_features", "out_features")):
            raise TypeError(
                "base must be a linear layer (with in_features and out_features), "
                f"got {type(base).__name__}"
            )
        self.base = base
        freeze(base)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        weight = getattr(base, "weight", None)
        if isinstance(weight, Tensor) and weight.is_floating_point():
            device, dtype = weight.device, weight.dtype
        else:  # a quantized base: its buffers say where it lives
            tensor = next(itertools.chain(base.parameters(), base.buffers()), None)
            device, dtype = (None if tensor is None else tensor.device), torch.float32
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's and peft's
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.merged = False

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> Tensor:
        """``(alpha / r) B A``, ``(out_features, in_features)``: what training added to
        ``W_0``."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: Tensor) -> Tensor:
        """``x: (..., in_features)`` -> ``(..., out_features)``."""
        out = self.base(x)
        if self.merged:
            return out
        return out + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def _mergeable_weight(self) -> Tensor:
        weight = getattr(self.base, "weight", None)
        if not isinstance(self.base, nn.Linear) or not isinstance(weight, Tensor):
            raise TypeError(
                f"only an nn.Linear base can be merged, not {type(self.base).__name__} "
                "(a quantized base would have to be quantized again)"
            )
        return weight

    @torch.no_grad()
    def merge(self) -> None:
        """``W_0 <- W_0 + (alpha / r) B A``: the layer computes the same function (up to
        rounding) with one matrix product; the low-rank path is skipped until
        :meth:`unmerge`."""
        if self.merged:
            raise RuntimeError("the update is already merged")
        self._mergeable_weight().add_(self.delta_weight())
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """``W_0 <- W_0 - (alpha / r) B A``: back to the frozen weight (up to rounding)."""
        if not self.merged:
            raise RuntimeError("the update is not merged")
        self._mergeable_weight().sub_(self.delta_weight())
        self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, merged={self.merged}"


def linear_layer_names(model: nn.Module) -> list[str]:
    """The qualified names of the ``nn.Linear`` layers of ``model``, in module order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def matches(name: str, target: str) -> bool:
    """Whether the module ``name`` is ``target`` or ends with ``"." + target``, the rule
    of ``target_modules`` in ``peft``: ``"w_q"`` and ``"attn.w_q"`` both match
    ``"transformer.blocks.0.attn.w_q"``."""
    return name == target or name.endswith("." + target)


def select_linear_layers(model: nn.Module, targets: Sequence[str]) -> list[str]:
    """The names of the ``nn.Linear`` layers of ``model`` that match one of ``targets``.

    Raises:
        ValueError: ``targets`` is empty or a string, or a target matches no linear layer
            (the message lists the layers there are).
    """
    if isinstance(targets, str) or not targets:
        raise ValueError(f"targets must be a non-empty list of layer names, got {targets!r}")
    names = linear_layer_names(model)
    for target in targets:
        if not any(matches(name, target) for name in names):
            kinds = list(dict.fromkeys(".".join(name.split(".")[-2:]) for name in names))
            raise ValueError(
                f"target {target!r} matches no nn.Linear layer of the model; its linear "
                f"layers end in {kinds}"
            )
    return [name for name in names if any(matches(name, t) for t in targets)]


def apply_lora(
    model: nn.Module,
    targets: Sequence[str],
    r: int,
    alpha: float | None = None,
    dropout: float = 0.0,
) -> list[str]:
    """Wrap the linear layers of ``model`` named by ``targets`` in :class:`LoRALinear`,
    in place, and freeze every other parameter of ``model``.

    Args:
        model: e.g. a :class:`~llmcourse.models.GPT` (its layers are called
            ``transformer.blocks.<i>.attn.w_q``, ``.w_k``, ``.w_v``, ``.w_o``,
            ``transformer.blocks.<i>.ffn.up``, ``.down``).
        targets: layer names or name endings (:func:`matches`), e.g. ``["w_q", "w_v"]``.
        r, alpha, dropout: as in :class:`LoRALinear`.

    Returns:
        The names of the wrapped layers.

    Raises:
        ValueError: a bad rank, alpha or dropout, or a target that matches no layer.
    """
    check_int("r", r)
    names = select_linear_layers(model, targets)
    freeze(model)
    for name in names:
        model.set_submodule(name, LoRALinear(model.get_submodule(name), r, alpha, dropout))
    return names


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    """The :class:`LoRALinear` layers of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> int:
    """Merge every LoRA layer of ``model`` (:meth:`LoRALinear.merge`); returns how many."""
    layers = lora_layers(model)
    for layer in layers:
        layer.merge()
    return len(layers)


def unmerge_lora(model: nn.Module) -> int:
    """Unmerge every LoRA layer of ``model`` (:meth:`LoRALinear.unmerge`); returns how many."""
    layers = lora_layers(model)
    for layer in layers:
        layer.unmerge()
    return len(layers)
