"""The trained part of a model: choosing it, counting it, saving only it, and what
training it holds in memory.

Every parameter-efficient method freezes the pretrained model and trains a small set of
parameters, its own or a few of the model's: BitFit (Ben Zaken et al., 2022) trains only
the biases (:func:`bitfit`). Whatever the method, the trained parameters are the ones with
``requires_grad``; :func:`count_parameters` counts them, :func:`save_trainable` writes
only them (a small file per task, the pretrained model being shared), and
:func:`load_trainable` puts them back into a freshly adapted copy of the model.
:func:`state_checksum` fingerprints the frozen weights, to check that training and saving
never changed them.

:func:`training_memory` measures what one training step keeps in memory besides the
data: the weights, the gradients of the trained parameters, the optimizer's state (two
moments per trained number for Adam) and the activations that the forward pass saves
for the backward pass. Full fine-tuning pays for gradients and moments of every
parameter; a parameter-efficient method only for its own, but it still stores
activations to backpropagate through the frozen layers to its parameters.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn


def freeze(model: nn.Module) -> nn.Module:
    """Set ``requires_grad = False`` on every parameter of ``model``; returns it."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def count_parameters(model: nn.Module, trainable: bool = False) -> int:
    """The number of parameters of ``model`` (a tensor shared by two modules, such as tied
    embeddings, counts once); only those with ``requires_grad`` when ``trainable``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def bitfit(model: nn.Module) -> list[str]:
    """BitFit: freeze ``model`` except its biases (the ``bias`` of every linear layer and
    norm). Returns the names of the trained biases.

    Raises:
        ValueError: the model has no bias.
    """
    names = []
    for name, p in model.named_parameters():
        is_bias = name == "bias" or name.endswith(".bias")
        p.requires_grad_(is_bias)
        if is_bias:
            names.append(name)
    if not names:
        raise ValueError("the model has no bias parameters for BitFit to train")
    return names


def trainable_state(model: nn.Module) -> dict[str, Tensor]:
    """``{name: tensor}`` of the parameters of ``model`` that require gradients, detached
    copies on the CPU, named as in ``model.state_dict()``."""
    return {
        name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad
    }


def save_trainable(model: nn.Module, path: str | os.PathLike) -> int:
    """Write only the trainable parameters of ``model`` (:func:`trainable_state`) to
    ``path`` with ``torch.save``: plain tensors, readable with ``weights_only=True``.
    Returns the file's size in bytes.

    Raises:
        ValueError: nothing in the model is trainable.
    """
    state = trainable_state(model)
    if not state:
        raise ValueError("the model has no trainable parameters to save")
    torch.save(state, path)
    return os.path.getsize(path)


@torch.no_grad()
def load_trainable(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Copy the parameters saved by :func:`save_trainable` into ``model``, which must be
    adapted the same way (same trainable names and shapes). Returns the names loaded.

    Raises:
        ValueError: the file's names or shapes differ from the model's trainable
            parameters.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if set(state) != set(params):
        missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
        raise ValueError(
            f"{os.fspath(path)!r} does not fit the model's trainable parameters: missing "
            f"{missing}, unexpected {unexpected}"
        )
    for name, value in state.items():
        if value.shape != params[name].shape:
            raise ValueError(
                f"{name}: the file holds {tuple(value.shape)}, the model "
                f"{tuple(params[name].shape)}"
            )
        params[name].copy_(value)
    return sorted(state)


def state_checksum(model: nn.Module) -> str:
    """The SHA-256 of ``model.state_dict()``'s names, shapes, dtypes and bytes: equal
    checksums mean bit-for-bit equal weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _tensor_bytes(tensors: list[Tensor]) -> int:
    seen, total = set(), 0
    for t in tensors:
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def training_memory(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], Tensor],
    batch: Any,
    optimizer: torch.optim.Optimizer,
) -> dict[str, int]:
    """Bytes held by one training step of ``model`` on ``batch``, measured on the tensors.

    Runs ``loss_fn(model, batch)``, its backward pass and ``optimizer.step()`` once
    (the model is updated), then measures:

    - ``"weights"``: the model's parameters and buffers (frozen or not, quantized codes
      included);
    - ``"gradients"``: the ``.grad`` of the trained parameters;
    - ``"optimizer"``: the tensors of the optimizer's state (Adam's two moments);
    - ``"activations"``: the tensors the forward pass saved for the backward pass (each
      storage once, the parameters' own excluded), the peak of a step's memory beyond
      the other three;
    - ``"total"``: their sum.
    """
    params = list(model.parameters()) + list(model.buffers())
    param_storages = {p.untyped_storage().data_ptr() for p in params}
    saved: list[Tensor] = []

    def pack(tensor: Tensor) -> Tensor:
        if tensor.untyped_storage().data_ptr() not in param_storages:
            saved.append(tensor)
        return tensor

    model.train()
    optimizer.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    memory = {
        "weights": _tensor_bytes(params),
        "gradients": _tensor_bytes([p.grad for p in model.parameters() if p.grad is not None]),
        "optimizer": _tensor_bytes(
            [
                t
                for state in optimizer.state.values()
                for t in state.values()
                if isinstance(t, Tensor) and t.ndim > 0
            ]
        ),
        "activations": _tensor_bytes(saved),
    }
    memory["total"] = sum(memory.values())
    return memory
