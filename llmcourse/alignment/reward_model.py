"""Reward and value models: a language model's Transformer with a scalar head.

A **reward model** reads a prompt and a response and returns one number, how good the
response is. InstructGPT (Ouyang et al., 2022) builds it from the supervised model
itself: the same Transformer, its next-token output layer replaced by a linear map to
one number, read at the response's last token (the ``<|endoftext|>`` that ends it, the
only position that has seen the whole response). Starting from a model that already
reads the language, the reward model only has to learn what makes a response better.

PPO's **value model** is the same construction read at every position: ``V_t``
estimates the reward still to come after token ``t`` (InstructGPT initialises it from
the reward model). :class:`ScalarModel` is both: :meth:`~ScalarModel.forward` gives the
scalar at every position, :meth:`~ScalarModel.score` at each sequence's last token.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from llmcourse.alignment.rollout import Rollout
from llmcourse.checks import check_token_ids, describe
from llmcourse.generation.generate import eval_no_grad
from llmcourse.models.gpt import GPT


class ScalarModel(nn.Module):
    """A GPT's Transformer with a linear head to one number per position.

    Args:
        body: the Transformer to read with; :meth:`from_language_model` copies a trained
            one. Its output layer is not used.
    """

    def __init__(self, body: GPT) -> None:
        super().__init__()
        if not isinstance(body, GPT):
            raise TypeError(f"body must be a GPT, got {type(body).__name__}")
        self.body = body
        self.head = nn.Linear(body.config.d_model, 1)
        nn.init.normal_(self.head.weight, std=1 / (body.config.d_model + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_language_model(cls, model: GPT) -> ScalarModel:
        """A scalar model on a copy of ``model``'s Transformer (``model`` is unchanged)."""
        if not isinstance(model, GPT):
            raise TypeError(f"model must be a GPT, got {type(model).__name__}")
        return cls(copy.deepcopy(model))

    def forward(self, ids: Tensor) -> Tensor:
        """``ids: (batch, time)`` long -> ``(batch, time)`` float: the scalar after each
        position has read the tokens up to it (causally)."""
        return self.head(self.body.hidden_states(ids)).squeeze(-1)

    def score(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """The scalar at each sequence's last token.

        Args:
            ids: ``(batch, time)`` long, right-padded.
            lengths: ``(batch,)`` long, the number of real tokens of each row, in
                ``[1, time]``; row ``i`` is read at position ``lengths[i] - 1``. Padding
                after it is never seen (the attention is causal).

        Returns:
            ``(batch,)`` float.
        """
        check_token_ids("ids", ids)
        check_lengths(lengths, ids)
        # Run only as far as the longest row: padding beyond it cannot matter.
        scalars = self(ids[:, : int(lengths.max())])
        return scalars.gather(1, (lengths.long() - 1)[:, None]).squeeze(1)


def reward_fn(model: ScalarModel) -> Callable[[Rollout], Tensor]:
    """The reward model as a reward function of rollouts: ``fn(rollout) -> (batch,)``,
    each response's score, computed in eval mode without gradients."""
    if not isinstance(model, ScalarModel):
        raise TypeError(f"model must be a ScalarModel, got {type(model).__name__}")

    def score(rollout: Rollout) -> Tensor:
        with eval_no_grad(model):
            return model.score(rollout.ids, rollout.lengths)

    return score


def check_lengths(lengths: object, ids: Tensor) -> Tensor:
    """``lengths`` if it is a ``(batch,)`` integer tensor of values in ``[1, time]``."""
    batch, time = ids.shape
    if (
        not isinstance(lengths, Tensor)
        or lengths.dtype not in (torch.int32, torch.int64)
        or lengths.shape != (batch,)
    ):
        raise ValueError(f"lengths must be a ({batch},) long tensor, got {describe(lengths)}")
    if lengths.device.type == "cpu" and bool(((lengths < 1) | (lengths > time)).any()):
        raise ValueError(f"lengths must be in [1, {time}], got {lengths.tolist()}")
    return lengths
