"""The shared training loop: it learns, is repeatable, clips, evaluates and validates."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from llmcourse.training import evaluate, train


def regression_batches(seed: int):
    generator = torch.Generator().manual_seed(seed)
    w = torch.tensor([[2.0], [-3.0]])
    while True:
        x = torch.randn(32, 2, generator=generator)
        yield x, x @ w + 0.5


def mse(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def fresh_model(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(2, 1)


def test_train_fits_a_linear_regression():
    model = fresh_model()
    history = train(model, mse, regression_batches(0), steps=300, lr=0.05, progress=False)
    assert len(history.train_loss) == 300
    assert history.train_loss[-1] < 1e-3 < history.train_loss[0]
    torch.testing.assert_close(
        model.weight.detach(), torch.tensor([[2.0, -3.0]]), atol=0.02, rtol=0
    )


def test_train_is_repeatable():
    runs = [
        train(fresh_model(), mse, regression_batches(1), steps=20, progress=False).train_loss
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_first_step_matches_a_hand_written_adamw_step():
    model, reference = fresh_model(), fresh_model()
    batch = next(regression_batches(2))
    history = train(
        model, mse, [batch], steps=1, lr=0.1, weight_decay=0.01, grad_clip=None, progress=False
    )
    optimizer = torch.optim.AdamW(reference.parameters(), lr=0.1, weight_decay=0.01)
    loss = mse(reference, batch)
    loss.backward()
    norm = torch.sqrt(sum((p.grad**2).sum() for p in reference.parameters()))
    optimizer.step()
    assert history.train_loss == [pytest.approx(loss.item())]
    assert history.grad_norm == [pytest.approx(norm.item())]
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_gradient_is_clipped_to_the_given_norm():
    model = fresh_model()
    clipped_norms = []

    def loss_fn(m, batch):
        return 1000.0 * mse(m, batch)

    def record(m):  # runs after the step; the gradients of the step are still there
        clipped_norms.append(torch.sqrt(sum((p.grad**2).sum() for p in m.parameters())).item())
        return 0.0

    history = train(
        model,
        loss_fn,
        regression_batches(3),
        steps=3,
        grad_clip=0.5,
        eval_fn=record,
        eval_every=1,
        progress=False,
    )
    assert all(n > 0.5 for n in history.grad_norm)
    assert clipped_norms == [pytest.approx(0.5)] * 3


def test_evaluation_schedule_and_mode():
    model = nn.Sequential(nn.Linear(2, 1), nn.Dropout(0.5))
    modes = []

    def eval_fn(m):
        modes.append((m.training, torch.is_grad_enabled()))
        return float(len(modes))

    history = train(
        model, mse, regression_batches(4), steps=10, eval_fn=eval_fn, eval_every=4, progress=False
    )
    assert history.eval_steps == [4, 8, 10]
    assert history.eval_loss == [1.0, 2.0, 3.0]
    assert modes == [(False, False)] * 3
    assert model.training


def test_evaluate_restores_eval_mode():
    model = fresh_model().eval()
    assert evaluate(model, lambda m: 1.5) == 1.5
    assert not model.training


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be"),
        ({"steps": 2.5}, "steps must be"),
        ({"lr": 0.0}, "lr must be"),
        ({"weight_decay": -1.0}, "weight_decay must be"),
        ({"grad_clip": 0.0}, "grad_clip must be"),
        ({"eval_every": -1}, "eval_every must be"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    arguments = {"steps": 5} | kwargs
    with pytest.raises(ValueError, match=message):
        train(fresh_model(), mse, regression_batches(0), progress=False, **arguments)


def test_running_out_of_batches_is_an_error():
    batches = itertools.islice(regression_batches(0), 3)
    with pytest.raises(ValueError, match="ran out after 3 of 5 steps"):
        train(fresh_model(), mse, batches, steps=5, progress=False)


def test_non_scalar_and_non_finite_losses_are_errors():
    batches = regression_batches(0)
    with pytest.raises(ValueError, match="scalar"):
        train(fresh_model(), lambda m, b: m(b[0]), batches, steps=1, progress=False)
    with pytest.raises(FloatingPointError, match="nan"):
        train(
            fresh_model(), lambda m, b: mse(m, b) * float("nan"), batches, steps=1, progress=False
        )


def test_a_model_without_trainable_parameters_is_an_error():
    model = fresh_model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(model, mse, regression_batches(0), steps=1, progress=False)
