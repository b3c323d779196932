"""Model ensembles, cascades and weak-to-strong (llmcourse.prompting.ensembles)."""

import math

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.data import IGNORE_INDEX
from llmcourse.prompting.ensembles import cascade, ensemble_log_probs, ensemble_loss, gap_recovered


def test_ensemble_log_probs_is_the_log_of_the_mean_probability():
    a = torch.tensor([[0.7, 0.2, 0.1]]).log()
    b = torch.tensor([[0.1, 0.1, 0.8]]).log()
    expected = torch.tensor([[0.4, 0.15, 0.45]]).log()
    assert torch.allclose(ensemble_log_probs([a, b]), expected)
    tiny = torch.tensor([[-2000.0, 0.0]])  # exp underflows; logsumexp does not
    assert ensemble_log_probs([tiny, tiny])[0, 0].item() == pytest.approx(-2000.0)
    with pytest.raises(ValueError, match="at least one model"):
        ensemble_log_probs([])


@pytest.mark.parametrize("seed", range(5))
def test_the_ensemble_loss_is_at_most_the_mean_of_the_models_losses(seed):
    models = [
        random_gpt(seed=seed * 10 + m, scale=3.0, vocab_size=9, block_size=8) for m in range(3)
    ]
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, 9, (4, 8), generator=g)
    targets = torch.randint(0, 9, (4, 8), generator=g)
    targets[0, :3] = IGNORE_INDEX
    losses = ensemble_loss(models, inputs, targets)
    singles = [losses[f"model {m}"] for m in range(3)]
    assert losses["ensemble"] <= sum(singles) / 3 + 1e-6  # Jensen
    # By hand for model 0: the mean over the targets that are not ignored.
    lp = models[0](inputs).log_softmax(-1)
    keep = targets != IGNORE_INDEX
    by_hand = -lp[keep].gather(1, targets[keep][:, None]).mean().item()
    assert singles[0] == pytest.approx(by_hand, rel=1e-5)


def test_cascade_by_hand():
    small_correct = [True, True, False, False]
    confidence = [0.9, 0.4, 0.8, 0.2]
    large_correct = [True, False, True, True]
    result = cascade(small_correct, confidence, large_correct, 0.5, small_cost=1, large_cost=10)
    # questions 1 and 3 go up: answers small, large, small, large -> right, wrong, wrong, right
    assert (result.accuracy, result.escalated, result.cost) == (0.5, 0.5, 6.0)
    everything = cascade(small_correct, confidence, large_correct, math.inf, 1, 10)
    assert (everything.accuracy, everything.cost) == (0.75, 11.0)
    nothing = cascade(small_correct, confidence, large_correct, 0.0, 1, 10)
    assert (nothing.accuracy, nothing.cost) == (0.5, 1.0)
    with pytest.raises(ValueError, match="same non-zero number"):
        cascade([True], [0.5, 0.4], [True], 0.5, 1, 10)


def test_gap_recovered():
    assert gap_recovered(0.6, 0.8, 1.0) == pytest.approx(0.5)
    assert gap_recovered(0.6, 0.6, 0.9) == 0.0
    with pytest.raises(ValueError, match="no gap"):
        gap_recovered(0.7, 0.8, 0.7)
