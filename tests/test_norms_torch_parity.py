"""Parity of llmcourse.modules.norms with ``torch.nn.LayerNorm`` and ``torch.nn.RMSNorm``.

Each pair shares its parameters through ``load_state_dict`` (the names are torch's),
after a random perturbation so that the gain and the shift matter; outputs and the
gradients with respect to the input and the parameters are compared in float64.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llmcourse.modules import LayerNorm, RMSNorm, layer_norm, rms_norm

DTYPE = torch.float64


class WrittenOutLayerNorm(LayerNorm):
    """The module's parameters, with the formula written out instead of the fused kernel."""

    def forward(self, x):
        return layer_norm(x, self.weight, self.bias, self.eps)


class WrittenOutRMSNorm(RMSNorm):
    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


def compare(ours: nn.Module, theirs: nn.Module, shape: tuple[int, ...]) -> None:
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.5 * torch.randn_like(p))
    ours.load_state_dict(theirs.state_dict())
    g = torch.Generator().manual_seed(1)
    x = (3 * torch.randn(*shape, generator=g, dtype=DTYPE) + 2).requires_grad_()
    w = torch.randn(*shape, generator=g, dtype=DTYPE)
    y_ours, y_theirs = ours(x), theirs(x)
    torch.testing.assert_close(y_ours, y_theirs)
    (grad_ours,) = torch.autograd.grad((y_ours * w).sum(), x, retain_graph=True)
    (grad_theirs,) = torch.autograd.grad((y_theirs * w).sum(), x, retain_graph=True)
    torch.testing.assert_close(grad_ours, grad_theirs)
    (y_ours * w).sum().backward()
    (y_theirs * w).sum().backward()
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, theirs_params[name].grad, msg=name)


@pytest.mark.parametrize("ours", [LayerNorm, WrittenOutLayerNorm], ids=["fused", "written-out"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("eps", [1e-5, 1e-2])
@pytest.mark.parametrize("shape", [(7,), (2, 5, 7)])
def test_layer_norm_matches_torch(ours, bias, eps, shape):
    torch.manual_seed(0)
    theirs = nn.LayerNorm(7, eps=eps, bias=bias).to(DTYPE)
    compare(ours(7, eps=eps, bias=bias).to(DTYPE), theirs, shape)


@pytest.mark.parametrize("ours", [RMSNorm, WrittenOutRMSNorm], ids=["fused", "written-out"])
@pytest.mark.parametrize("eps", [1e-6, 1e-2])
@pytest.mark.parametrize("shape", [(7,), (2, 5, 7)])
def test_rms_norm_matches_torch(ours, eps, shape):
    torch.manual_seed(0)
    theirs = nn.RMSNorm(7, eps=eps).to(DTYPE)
    compare(ours(7, eps=eps).to(DTYPE), theirs, shape)


def test_default_eps_matches_torch_layer_norm():
    assert LayerNorm(4).eps == nn.LayerNorm(4).eps
