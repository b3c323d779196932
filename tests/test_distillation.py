"""The distillation loss (llmcourse.compression.distillation)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmcourse.compression import distillation_loss, kd_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_seed_example_by_hand():
    # teacher {0.8, 0.1, 0.1}, student {0.7, 0.2, 0.1}: at T = 1 the loss is KL(p_T || p_S)
    teacher, student = torch.tensor([0.8, 0.1, 0.1]).log(), torch.tensor([0.7, 0.2, 0.1]).log()
    expected = 0.8 * math.log(0.8 / 0.7) + 0.1 * math.log(0.1 / 0.2) + 0.0
    assert distillation_loss(student, teacher).item() == pytest.approx(expected, rel=1e-5)
    cross_entropy = -(0.8 * math.log(0.7) + 0.1 * math.log(0.2) + 0.1 * math.log(0.1))
    entropy = -(0.8 * math.log(0.8) + 2 * 0.1 * math.log(0.1))
    assert expected == pytest.approx(cross_entropy - entropy)  # the two differ by H(p_T)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 5.0])
def test_temperature_and_its_square(temperature):
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(3, 4, 10, generator=g), torch.randn(3, 4, 10, generator=g) * 3
    p_t = F.softmax(teacher / temperature, -1)
    kl = (p_t * (p_t.log() - F.log_softmax(student / temperature, -1))).sum(-1).mean()
    torch.testing.assert_close(
        distillation_loss(student, teacher, temperature), temperature**2 * kl
    )
    reference = F.kl_div(
        F.log_softmax(student / temperature, -1).flatten(0, 1),
        F.log_softmax(teacher / temperature, -1).flatten(0, 1),
        reduction="batchmean",
        log_target=True,
    )
    torch.testing.assert_close(
        distillation_loss(student, teacher, temperature), temperature**2 * reference
    )


def test_the_gradient_is_the_difference_of_the_distributions_scaled_by_t():
    # d(T^2 KL)/dz_S = T (p_S - p_T) per position, divided by the number of positions
    g = torch.Generator().manual_seed(1)
    student = torch.randn(5, 7, generator=g, requires_grad=True)
    teacher = torch.randn(5, 7, generator=g, requires_grad=True)
    distillation_loss(student, teacher, 3.0).backward()
    expected = 3.0 * (F.softmax(student / 3, -1) - F.softmax(teacher / 3, -1)) / 5
    torch.testing.assert_close(student.grad, expected.detach())
    assert teacher.grad is None  # no gradient flows into the teacher


def test_equal_distributions_cost_nothing():
    logits = torch.randn(4, 9)
    assert (
        distillation_loss(logits, logits + 5.0, 2.0).abs().item() < 1e-6
    )  # softmax ignores shifts


def test_kd_loss_mixes_soft_and_hard_targets_and_ignores_padding():
    g = torch.Generator().manual_seed(2)
    student, teacher = torch.randn(2, 6, 11, generator=g), torch.randn(2, 6, 11, generator=g)
    targets = torch.randint(0, 11, (2, 6), generator=g)
    targets[1, 4:] = -100
    keep = targets != -100
    soft = distillation_loss(student[keep], teacher[keep], 2.0)
    hard = F.cross_entropy(student[keep], targets[keep])
    torch.testing.assert_close(
        kd_loss(student, teacher, targets, 2.0, 0.3), 0.3 * soft + 0.7 * hard
    )
    torch.testing.assert_close(kd_loss(student, teacher, targets, 2.0, 1.0), soft)
    torch.testing.assert_close(kd_loss(student, teacher, targets, 2.0, 0.0), hard)


def test_bad_arguments():
    a = torch.randn(2, 5)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        distillation_loss(a, a, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        distillation_loss(a, torch.randn(2, 6))
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        kd_loss(a, a, torch.zeros(2, dtype=torch.long), alpha=1.5)
    with pytest.raises(ValueError, match="targets must have the shape"):
        kd_loss(a, a, torch.zeros(3, dtype=torch.long))
