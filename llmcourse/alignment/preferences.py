"""Preferences between two responses: the Bradley-Terry model and the reward model's loss.

People are asked which of two responses is better, not how good each is. The
**Bradley-Terry** model (1952) links such choices to a hidden score ``r``: response
``a`` is preferred to ``b`` with probability

    P(a > b) = sigmoid(r(a) - r(b)),

so equal scores give a coin flip and a difference of 2 a 88% preference. A **reward
model** ``RM`` is trained to be that score from the choices alone, by maximising the
likelihood of the observed preferences (Ouyang et al., 2022):

    loss = -log sigmoid(RM(s_w) - RM(s_l)),

``s_w`` the preferred ("won") response and ``s_l`` the other. Only differences of
rewards are learned: adding a constant to every reward changes nothing.

:func:`sample_preferences` simulates annotators from a known (gold) reward: noisy
labels, drawn with the Bradley-Terry probability. :func:`noise_ceiling` is the best
accuracy any model can reach on such labels: it predicts the more probable choice and
is still wrong whenever the annotator drew the other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from llmcourse.checks import check_positive, describe


def _check_pair(first: Tensor, second: Tensor) -> None:
    for name, t in (("the first rewards", first), ("the second rewards", second)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {describe(t)}")
    if first.shape != second.shape:
        raise ValueError(
            f"the two reward tensors must have one shape, got {tuple(first.shape)} and "
            f"{tuple(second.shape)}"
        )


def preference_probability(reward_a: Tensor, reward_b: Tensor, scale: float = 1.0) -> Tensor:
    """``P(a > b) = sigmoid((r_a - r_b) / scale)``, elementwise. ``scale`` > 0 is the
    annotators' noise: larger means closer to coin flips."""
    _check_pair(reward_a, reward_b)
    check_positive("scale", scale)
    return torch.sigmoid((reward_a - reward_b) / scale)


def sample_preferences(
    gold_a: Tensor, gold_b: Tensor, scale: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """Simulated annotators: True where ``a`` is preferred, drawn with probability
    :func:`preference_probability` of the gold rewards (one independent draw each)."""
    p = preference_probability(gold_a, gold_b, scale)
    return torch.rand(p.shape, generator=generator, device=p.device) < p


def noise_ceiling(gold_a: Tensor, gold_b: Tensor, scale: float = 1.0) -> Tensor:
    """The expected accuracy of the best possible predictor of the sampled labels:
    ``mean(max(p, 1 - p))`` with ``p = P(a > b)``."""
    p = preference_probability(gold_a, gold_b, scale)
    return torch.maximum(p, 1 - p).mean()


def pairwise_loss(chosen: Tensor, rejected: Tensor) -> Tensor:
    """The reward model's loss ``mean(-log sigmoid(r_chosen - r_rejected))`` over a
    batch of pairs, ``(batch,)`` each."""
    _check_pair(chosen, rejected)
    return -F.logsigmoid(chosen - rejected).mean()
