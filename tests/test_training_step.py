"""The pieces of a training step: accumulation equals one large batch, clipping, autocast,
and a loop written from the pieces equals the default loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llmcourse.training import (
    AdamW,
    accumulate_gradients,
    lr_at,
    optimizer_step,
    parameter_groups,
    precision_context,
    set_learning_rate,
    train,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2)).double()


def batches(seed: int = 0, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    while True:
        x = torch.randn(size, 4, generator=g, dtype=torch.float64)
        yield x, x[:, :2] * 3 - x[:, 2:]


def mse(m, batch):
    x, y = batch
    return nn.functional.mse_loss(m(x), y)


@pytest.mark.parametrize("parts", [1, 2, 4, 8])
def test_accumulated_gradients_equal_those_of_one_large_batch(parts):
    x, y = next(batches(size=32))
    large, split = model(), model()
    mse(large, (x, y)).backward()
    microbatches = list(zip(x.chunk(parts), y.chunk(parts), strict=True))
    loss = accumulate_gradients(mse, split, microbatches)
    torch.testing.assert_close(loss, mse(large, (x, y)).detach().float(), rtol=1e-6, atol=0)
    for p, q in zip(large.parameters(), split.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-14)


def test_weighted_accumulation_of_unequal_microbatches_equals_one_large_batch():
    """Microbatches of 3, 8 and 21 items, each loss a mean over its own items: weighting
    by the item counts gives the gradient of the mean over all 32."""
    x, y = next(batches(size=32))
    large, split = model(), model()
    mse(large, (x, y)).backward()
    sizes = [3, 8, 21]
    microbatches = list(zip(x.split(sizes), y.split(sizes), strict=True))
    loss = accumulate_gradients(mse, split, microbatches, weights=sizes)
    torch.testing.assert_close(loss, mse(large, (x, y)).detach().float(), rtol=1e-6, atol=0)
    for p, q in zip(large.parameters(), split.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-14)
    unweighted = model()
    accumulate_gradients(mse, unweighted, microbatches)  # equal shares: not the large batch
    assert not torch.allclose(next(unweighted.parameters()).grad, next(large.parameters()).grad)


def test_accumulate_gradients_errors():
    with pytest.raises(ValueError, match="at least one batch"):
        accumulate_gradients(mse, model(), [])
    with pytest.raises(ValueError, match="scalar tensor"):
        accumulate_gradients(lambda m, b: m(b[0]), model(), [next(batches())])
    with pytest.raises(ValueError, match="weights must be 2 numbers >= 0"):
        accumulate_gradients(mse, model(), [next(batches())] * 2, weights=[1.0])
    with pytest.raises(ValueError, match="positive sum"):
        accumulate_gradients(mse, model(), [next(batches())] * 2, weights=[0, 0])


def test_optimizer_step_clips_updates_and_keeps_the_gradients():
    m = model()
    optimizer = AdamW(m.parameters(), lr=0.1, weight_decay=0.0)
    (1000 * mse(m, next(batches()))).backward()
    norm = optimizer_step(optimizer, grad_clip=0.5)
    total = torch.sqrt(sum((p.grad**2).sum() for p in m.parameters()))
    assert norm.item() > 0.5 and total.item() == pytest.approx(0.5)
    assert optimizer.state[next(m.parameters())]["step"] == 1
    with pytest.raises(ValueError, match="grad_clip must be > 0 or None"):
        optimizer_step(optimizer, grad_clip=0.0)


def test_precision_context():
    with precision_context("cpu", "bf16"):
        assert nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.bfloat16
    with precision_context("cpu", "fp32"):
        assert nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float32
    with pytest.raises(ValueError, match="precision must be one of"):
        precision_context("cpu", "fp16")


def test_a_loop_written_from_the_pieces_equals_train():
    """The few lines a chapter writes for a loop of its own (PPO, DPO) take train's steps."""
    steps, settings = 15, dict(lr=0.05, schedule="cosine", warmup_steps=3, min_lr=0.0)
    reference = model()
    history = train(
        reference, mse, batches(), steps=steps, weight_decay=0.1, accumulate=2,
        grad_clip=1.0, progress=False, **settings,
    )  # fmt: skip
    ours, data, losses = model(), batches(), []
    optimizer = AdamW(parameter_groups(ours, 0.1), lr=settings["lr"])
    for step in range(1, steps + 1):
        set_learning_rate(optimizer, lr_at(step, steps=steps, **settings))
        optimizer.zero_grad(set_to_none=True)
        losses.append(accumulate_gradients(mse, ours, [next(data), next(data)]).item())
        optimizer_step(optimizer, grad_clip=1.0)
    assert losses == history.train_loss
    for p, q in zip(ours.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)
