"""The gold reward: what Chapter 12's simulated annotators want, written down.

Studies with real annotators never see the reward behind their labels; the course
defines one, so that it can measure how much a policy truly improved, not only how
much the reward model (a learned *proxy*) says it did. The annotators want

    gold(reply) = [the reply's answer is right] - cost * (tokens in the reply),

the right answer first, and among equally right (or wrong) replies the shorter one: a
correctness criterion that a program can check (the task's one correct answer) and a
stylistic one that it cannot tell from correctness alone. With ``cost=0`` it is the
*verifiable* reward of GRPO-style training: right or wrong.

A reply's answer is its first line; for a task with intermediate steps (arithmetic),
what follows ``The answer is`` on that line
(:func:`~llmcourse.prompting.fewshot.parse_answer`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from llmcourse.alignment.rollout import Rollout
from llmcourse.checks import check_non_negative
from llmcourse.data.tasks import Example
from llmcourse.prompting.chat import reply_text
from llmcourse.prompting.fewshot import parse_answer
from llmcourse.text.bpe import BPETokenizer

COST_PER_TOKEN = 0.01
"""The annotators' price of one more reply token, in units of a right answer."""


def is_correct(example: Example, reply: str) -> bool:
    """Whether ``reply`` (the text of an assistant's reply) answers ``example`` rightly."""
    return parse_answer(reply, chain=bool(example.steps)) == example.output


def gold_reward(example: Example, reply: str, n_tokens: int, cost: float = COST_PER_TOKEN) -> float:
    """``[reply is right] - cost * n_tokens`` for one reply of ``n_tokens`` tokens."""
    check_non_negative("cost", cost)
    return float(is_correct(example, reply)) - cost * n_tokens


class GoldReward:
    """The gold reward of the responses in a rollout of ``examples``' prompts.

    ``reward(rollout) -> (batch,)`` float, the reward function that
    :func:`~llmcourse.alignment.policy_optimization.rl_step` and
    :func:`~llmcourse.alignment.policy_optimization.evaluate_policy` take: row ``i``
    answers ``examples[rollout.prompt_index[i]]``; its tokens are the response's,
    the ``<|endoftext|>`` that ends it included.
    """

    def __init__(
        self, tokenizer: BPETokenizer, examples: Sequence[Example], cost: float = COST_PER_TOKEN
    ) -> None:
        check_non_negative("cost", cost)
        if not examples or not all(isinstance(e, Example) for e in examples):
            raise ValueError("examples must be a non-empty sequence of tasks' Examples")
        self.tokenizer, self.examples, self.cost = tokenizer, list(examples), cost

    def __call__(self, rollout: Rollout) -> Tensor:
        if int(rollout.prompt_index.max()) >= len(self.examples):
            raise ValueError(
                f"the rollout answers {int(rollout.prompt_index.max()) + 1} prompts, but "
                f"there are {len(self.examples)} examples"
            )
        rewards = [
            gold_reward(self.examples[int(i)], reply_text(self.tokenizer, r), len(r), self.cost)
            for i, r in zip(rollout.prompt_index, rollout.responses(), strict=True)
        ]
        return torch.tensor(rewards)
