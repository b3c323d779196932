"""AdamW and gradient clipping written out, against torch's own, and the parameter groups."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from llmcourse.models import GPT
from llmcourse.modules import TransformerConfig
from llmcourse.training import AdamW, clip_grad_norm, parameter_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 3))


def loss_of(model: nn.Module, step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(step)
    x, y = torch.randn(16, 5, generator=g), torch.randn(16, 3, generator=g)
    return nn.functional.mse_loss(model(x), y)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(
    ("betas", "eps", "weight_decay"), [((0.9, 0.999), 1e-8, 0.1), ((0.8, 0.95), 1e-6, 0.0)]
)
def test_adamw_takes_torch_adamw_s_steps(foreach, betas, eps, weight_decay):
    ours_model, torch_model = mlp(), mlp()
    ours = AdamW(parameter_groups(ours_model, weight_decay), lr=1e-2, betas=betas, eps=eps)
    theirs = torch.optim.AdamW(
        parameter_groups(torch_model, weight_decay), lr=1e-2, betas=betas, eps=eps, foreach=foreach
    )
    for step in range(1, 61):
        for model, optimizer in ((ours_model, ours), (torch_model, theirs)):
            for group in optimizer.param_groups:  # a schedule changes the rate
                group["lr"] = 1e-2 * (1 - step / 80)
            optimizer.zero_grad()
            loss_of(model, step).backward()
            optimizer.step()
        for p, q in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    for p, q in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
        state, reference = ours.state[p], theirs.state[q]
        assert state["step"] == 60 == reference["step"].item()
        torch.testing.assert_close(state["exp_avg"], reference["exp_avg"], rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(state["exp_avg_sq"], reference["exp_avg_sq"])


def test_adamw_first_step_by_hand():
    # m_hat = g, v_hat = g^2: the first step moves every weight by lr * g / (|g| + eps)
    p = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    p.grad = torch.tensor([0.3, -4.0, 0.0])
    AdamW([p], lr=0.1, eps=1e-8, weight_decay=0.5).step()
    decayed = torch.tensor([1.0, -2.0, 0.5]) * (1 - 0.1 * 0.5)
    expected = decayed - 0.1 * torch.tensor([0.3, -4.0, 0.0]) / (
        torch.tensor([0.3, 4.0, 0.0]) + 1e-8
    )
    torch.testing.assert_close(p.detach(), expected)


def test_adamw_state_dict_round_trips_through_weights_only():
    model = mlp()
    optimizer = AdamW(model.parameters(), lr=1e-2)
    loss_of(model, 1).backward()
    optimizer.step()
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    restored = AdamW(mlp().parameters(), lr=1e-2)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.state_dict()["state"][0]["step"] == 1


@pytest.mark.parametrize("max_norm", [0.01, 0.5, 10.0, float("inf")])
def test_clip_grad_norm_equals_torch(max_norm):
    ours_model, torch_model = mlp(), mlp()
    for model in (ours_model, torch_model):
        (100 * loss_of(model, 3)).backward()
    norm = clip_grad_norm(ours_model.parameters(), max_norm)
    expected = torch.nn.utils.clip_grad_norm_(torch_model.parameters(), max_norm)
    torch.testing.assert_close(norm, expected)
    for p, q in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)
    total = torch.sqrt(sum((p.grad**2).sum() for p in ours_model.parameters()))
    assert total.item() <= min(max_norm, norm.item()) * (1 + 1e-5)


def test_clip_grad_norm_skips_parameters_without_gradients_and_checks_max_norm():
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(3))
    a.grad = torch.tensor([3.0, 4.0])
    assert clip_grad_norm([a, b], 1.0).item() == pytest.approx(5.0)
    torch.testing.assert_close(a.grad, torch.tensor([0.6, 0.8]), rtol=1e-5, atol=0)
    assert clip_grad_norm([b], 1.0).item() == 0.0
    with pytest.raises(ValueError, match="max_norm must be a number > 0"):
        clip_grad_norm([a], 0)


def test_parameter_groups_decay_matrices_only():
    config = TransformerConfig(50, 16, 16, 2, 2, position="learned")
    model = GPT(config)
    model.transformer.blocks[0].ffn.up.weight.requires_grad_(False)  # frozen: in no group
    decayed, others = parameter_groups(model, weight_decay=0.1)
    assert decayed["weight_decay"] == 0.1 and others["weight_decay"] == 0.0
    names = {id(p): name for name, p in model.named_parameters()}
    decayed_names = {names[id(p)] for p in decayed["params"]}
    other_names = {names[id(p)] for p in others["params"]}
    assert decayed_names == {
        name
        for name, p in model.named_parameters()
        if name.endswith("weight") and p.ndim == 2 and "embed" not in name
    } - {"transformer.blocks.0.ffn.up.weight"}
    assert "embed.weight" in other_names  # the (tied) embedding, once
    assert "transformer.positions.table" in other_names
    assert all(n.endswith(("bias", "norm.weight")) for n in other_names - {
        "embed.weight", "transformer.positions.table"})  # fmt: skip
    assert len(decayed["params"]) + len(others["params"]) == (
        sum(1 for p in model.parameters()) - 1
    )


def test_parameter_groups_errors():
    with pytest.raises(ValueError, match="no trainable parameters"):
        parameter_groups(nn.Linear(2, 2).requires_grad_(False), 0.1)
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        parameter_groups(nn.Linear(2, 2), -1.0)
    only_biases = parameter_groups(nn.LayerNorm(3), 0.1)
    assert len(only_biases) == 1 and only_biases[0]["weight_decay"] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"eps": -1.0}, "eps must be a finite number > 0"),
        ({"weight_decay": -0.1}, "weight_decay must be a finite number >= 0"),
        ({"betas": (0.9, 1.0)}, r"betas must be two numbers in \[0, 1\)"),
    ],
)
def test_adamw_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdamW(nn.Linear(2, 2).parameters(), **kwargs)
