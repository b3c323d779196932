"""Unit and parity tests of llmcourse.modules.feedforward: SiLU, the GELU MLP and SwiGLU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmcourse.modules import FeedForward, SwiGLU, silu


def test_silu_is_z_sigmoid_z_and_equals_torch():
    z = torch.linspace(-20, 20, 4001, dtype=torch.float64)
    torch.testing.assert_close(silu(z), z / (1 + torch.exp(-z)), atol=1e-15, rtol=1e-12)
    torch.testing.assert_close(silu(z), F.silu(z), atol=1e-15, rtol=1e-12)
    assert silu(torch.tensor(0.0)) == 0
    # SiLU dips below 0 (its minimum is about -0.278 at z = -1.278) and approaches z
    assert silu(z).min().item() == pytest.approx(-0.2785, abs=1e-4)
    torch.testing.assert_close(silu(z)[-1], z[-1], atol=1e-6, rtol=0)


def test_swiglu_is_the_gated_formula():
    torch.manual_seed(0)
    ffn = SwiGLU(d_model=6, d_ff=10).double()
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    w1, w3, w2 = ffn.gate.weight, ffn.up.weight, ffn.down.weight
    expected = (silu(x @ w1.T) * (x @ w3.T)) @ w2.T
    torch.testing.assert_close(ffn(x), expected)
    assert all(layer.bias is None for layer in (ffn.gate, ffn.up, ffn.down))
    assert sum(p.numel() for p in ffn.parameters()) == 3 * 6 * 10


def test_swiglu_gradients_match_autograd_of_the_formula():
    torch.manual_seed(1)
    ffn = SwiGLU(d_model=4, d_ff=8).double()
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ffn, (x,))


def test_feed_forward_is_the_two_layer_mlp():
    torch.manual_seed(0)
    ffn = FeedForward(d_model=6, d_ff=12, activation="relu").double()
    x = torch.randn(4, 6, dtype=torch.float64)
    expected = F.relu(x @ ffn.up.weight.T + ffn.up.bias) @ ffn.down.weight.T + ffn.down.bias
    torch.testing.assert_close(ffn(x), expected)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SwiGLU(0, 4), "d_model must be an integer >= 1, got 0"),
        (lambda: SwiGLU(4, 2.5), "d_ff must be an integer >= 1"),
        (lambda: SwiGLU(4, 8, dropout=1.0), r"dropout must be in \[0, 1\)"),
        (lambda: FeedForward(4, 8, activation="swish"), "activation must be one of"),
    ],
)
def test_bad_arguments_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()
