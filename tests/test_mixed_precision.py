"""Mixed-precision training with float32 master weights
(llmcourse.compression.mixed_precision)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.compression import MasterWeightTraining, rounded_away, spacing
from llmcourse.training import next_token_loss, train

pytestmark = pytest.mark.usefixtures("one_thread")


def batches(seed: int = 0):
    """Sequences that count up modulo 30 from a random start: a pattern to learn."""
    g = torch.Generator().manual_seed(seed)
    while True:
        ids = (torch.randint(0, 30, (8, 1), generator=g) + torch.arange(9)) % 30
        yield ids[:, :-1], ids[:, 1:]


def test_spacing_and_rounded_away_updates():
    assert spacing(1.0) == 2**-7 and spacing(0.75) == 2**-8 and spacing(-3.0) == 2**-6
    assert spacing(1.0, torch.float16) == 2**-10
    before = torch.ones(4)
    assert rounded_away(before, torch.tensor([1e-3, 3e-3, 5e-3, 0.0])) == pytest.approx(2 / 3)
    assert rounded_away(before, torch.tensor([1e-3, 2e-3, 1e-3, 1e-3]), torch.float16) == 0.0
    with pytest.raises(ValueError, match="other than 0"):
        spacing(0.0)


def test_the_compute_copy_is_16_bit_and_the_master_float32():
    trainer = MasterWeightTraining(random_gpt(vocab_size=30, block_size=8), lr=1e-2)
    assert all(p.dtype == torch.bfloat16 for p in trainer.model.parameters())
    assert all(p.dtype == torch.float32 for p in trainer.master.parameters())
    data = batches()
    for _ in range(3):
        trainer.step(next_token_loss, next(data))
    for master, compute in zip(
        trainer.master.parameters(), trainer.model.parameters(), strict=True
    ):
        assert torch.equal(
            master.bfloat16(), compute
        )  # step 8: the compute copy is the cast master
    state = next(iter(trainer.optimizer.state.values()))
    assert state["exp_avg"].dtype == torch.float32


def test_master_weights_follow_float32_training_closely():
    # the same run three ways: float32, float32 master weights with bf16 compute, bf16 autocast
    settings = dict(steps=30, lr=1e-2, grad_clip=1.0, weight_decay=0.0, progress=False)
    full = train(random_gpt(vocab_size=30, block_size=8), next_token_loss, batches(), **settings)
    autocast = train(
        random_gpt(vocab_size=30, block_size=8),
        next_token_loss,
        batches(),
        **settings,
        precision="bf16",
    )
    trainer = MasterWeightTraining(random_gpt(vocab_size=30, block_size=8), lr=1e-2, grad_clip=1.0)
    data = batches()
    losses = [trainer.step(next_token_loss, next(data)) for _ in range(30)]
    assert abs(losses[-1] - full.train_loss[-1]) < 0.05
    assert abs(autocast.train_loss[-1] - full.train_loss[-1]) < 0.05
    assert losses[-1] < losses[0] - 0.1


def test_float16_loss_scaling_skips_overflowing_steps():
    trainer = MasterWeightTraining(
        random_gpt(vocab_size=30, block_size=8), torch.float16, lr=1e-3, loss_scale=2.0**20
    )
    data = batches()
    first = {n: p.detach().clone() for n, p in trainer.master.named_parameters()}
    trainer.step(next_token_loss, next(data))  # the scaled gradients overflow float16
    assert trainer.skipped == 1 and trainer.loss_scale == 2.0**19
    assert all(torch.equal(p, first[n]) for n, p in trainer.master.named_parameters())
    for _ in range(10):
        trainer.step(next_token_loss, next(data))
    assert 1 < trainer.skipped < 10 and trainer.loss_scale <= 2.0**16  # float16's largest: 65504
    assert any(not torch.equal(p, first[n]) for n, p in trainer.master.named_parameters())


def test_growth_and_bad_arguments():
    trainer = MasterWeightTraining(
        random_gpt(vocab_size=30, block_size=8), lr=1e-3, loss_scale=4.0, growth_interval=2
    )
    data = batches()
    for _ in range(4):
        trainer.step(next_token_loss, next(data))
    assert trainer.loss_scale == 16.0 and trainer.skipped == 0
    with pytest.raises(ValueError, match="dtype must be one of"):
        MasterWeightTraining(random_gpt(vocab_size=30, block_size=8), torch.float32)
    with pytest.raises(ValueError, match="loss_scale must be"):
        MasterWeightTraining(random_gpt(vocab_size=30, block_size=8), loss_scale=0.0)
