"""Preference pairs, and the two things learned from them: a reward model and DPO.

A preference pair is a prompt with two responses, one preferred (*chosen*, ``s_w``) and
one not (*rejected*, ``s_l``). :func:`pairs_from_rollout` makes pairs from a rollout of
two responses per prompt and a label per prompt (e.g. drawn by
:func:`~llmcourse.alignment.preferences.sample_preferences`).

- :func:`reward_model_loss`: the reward model's pairwise loss
  ``-log sigmoid(RM(s_w) - RM(s_l))`` and its accuracy (how often ``RM(s_w) > RM(s_l)``).
- :func:`dpo_pair_loss`: DPO's loss on the policy's and the reference's sequence
  log-probabilities of both responses (:func:`~llmcourse.alignment.losses.dpo_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from llmcourse.alignment.logprobs import check_mask_like, response_logprobs, sequence_logprob
from llmcourse.alignment.losses import dpo_loss
from llmcourse.alignment.preferences import pairwise_loss
from llmcourse.alignment.reward_model import ScalarModel
from llmcourse.alignment.rollout import Rollout, sequence_lengths
from llmcourse.checks import describe


@dataclass(frozen=True)
class PreferencePairs:
    """``n`` pairs: ``(n, time)`` long ids and bool response masks of the chosen and
    the rejected responses (each row a prompt, a response and right padding)."""

    chosen: Tensor
    chosen_mask: Tensor
    rejected: Tensor
    rejected_mask: Tensor

    def __post_init__(self) -> None:
        for name in ("chosen", "rejected"):
            check_mask_like(f"{name}_mask", getattr(self, f"{name}_mask"), getattr(self, name))
        if len(self.chosen) != len(self.rejected):
            raise ValueError(f"{len(self.chosen)} chosen but {len(self.rejected)} rejected")

    def __len__(self) -> int:
        return len(self.chosen)

    def select(self, rows: Tensor) -> PreferencePairs:
        """The pairs of some rows."""
        return PreferencePairs(*(getattr(self, f.name)[rows] for f in fields(self)))


def pairs_from_rollout(rollout: Rollout, first_preferred: Tensor) -> PreferencePairs:
    """Pairs from a rollout of two responses per prompt (rows ``2i`` and ``2i + 1``).

    Args:
        rollout: a :class:`~llmcourse.alignment.rollout.Rollout` with ``group_size=2``.
        first_preferred: ``(prompts,)`` bool, True where row ``2i`` is the chosen one.
    """
    n = len(rollout.ids) // 2
    if len(rollout.ids) % 2 or not torch.equal(
        rollout.prompt_index, torch.arange(n).repeat_interleave(2)
    ):
        raise ValueError("the rollout must hold two responses per prompt (group_size=2)")
    if (
        not isinstance(first_preferred, Tensor)
        or first_preferred.dtype != torch.bool
        or first_preferred.shape != (n,)
    ):
        got = describe(first_preferred)
        raise ValueError(f"first_preferred must be a ({n},) bool tensor, got {got}")
    first, second = torch.arange(0, 2 * n, 2), torch.arange(1, 2 * n, 2)
    chosen = torch.where(first_preferred, first, second)
    rejected = torch.where(first_preferred, second, first)
    ids, mask = rollout.ids, rollout.response_mask
    return PreferencePairs(ids[chosen], mask[chosen], ids[rejected], mask[rejected])


def pair_rewards(model: ScalarModel, pairs: PreferencePairs) -> tuple[Tensor, Tensor]:
    """``(chosen, rejected)``: the reward model's score of each response, ``(n,)`` each."""
    chosen = model.score(pairs.chosen, sequence_lengths(pairs.chosen_mask))
    rejected = model.score(pairs.rejected, sequence_lengths(pairs.rejected_mask))
    return chosen, rejected


def reward_model_loss(model: ScalarModel, pairs: PreferencePairs) -> tuple[Tensor, Tensor]:
    """``(loss, accuracy)``: the mean pairwise loss of the pairs and the fraction whose
    chosen response gets the higher reward (detached)."""
    chosen, rejected = pair_rewards(model, pairs)
    return pairwise_loss(chosen, rejected), (chosen > rejected).float().mean().detach()


def pair_logprobs(model: nn.Module, pairs: PreferencePairs) -> tuple[Tensor, Tensor]:
    """``(chosen, rejected)``: ``log p(response | prompt)`` of each, ``(n,)`` each."""
    chosen = sequence_logprob(*response_logprobs(model, pairs.chosen, pairs.chosen_mask))
    rejected = sequence_logprob(*response_logprobs(model, pairs.rejected, pairs.rejected_mask))
    return chosen, rejected


def dpo_pair_loss(
    policy: nn.Module, reference_logps: tuple[Tensor, Tensor], pairs: PreferencePairs, beta: float
) -> tuple[Tensor, Tensor]:
    """``(loss, margin)``: DPO's loss on the pairs and the mean implicit-reward margin
    ``beta (log p/p_ref (s_w) - log p/p_ref (s_l))``. ``reference_logps`` are the
    reference's :func:`pair_logprobs` of the same pairs (computed once, no gradient)."""
    chosen, rejected = pair_logprobs(policy, pairs)
    loss, chosen_reward, rejected_reward = dpo_loss(chosen, rejected, *reference_logps, beta)
    return loss, (chosen_reward - rejected_reward).mean()
