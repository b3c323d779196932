"""Rollouts: responses sampled from a policy, packed into one right-padded batch.

Reinforcement learning from feedback alternates between *acting* and *learning*. Acting
is a **rollout**: for each prompt, sample ``group_size`` responses from the current
policy (several per prompt give GRPO its groups and every method a cheaper batch).
Learning then needs, for every response, the policy's log-probabilities of its tokens
(:func:`~llmcourse.alignment.logprobs.response_logprobs`), which reads the whole batch
at once: :class:`Rollout` holds it as one ``(batch, time)`` tensor, each row the prompt,
the response (ending with ``eos_id`` unless it ran out of tokens) and right padding,
with a mask that is True at the response's tokens.

The responses to one prompt are sampled together (one batch per prompt, with the
key-value cache of :func:`~llmcourse.generation.sample`), so prompts of different lengths
never need left padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from llmcourse.checks import check_int
from llmcourse.generation.generate import sample


@dataclass(frozen=True)
class Rollout:
    """A batch of prompts and sampled responses.

    Attributes:
        ids: ``(batch, time)`` long: each row a prompt, its response, then ``pad_id``.
        response_mask: ``(batch, time)`` bool, True at the response's tokens (the
            ``eos_id`` that ends a finished response included).
        prompt_index: ``(batch,)`` long, the prompt each row answers; rows of one prompt
            are consecutive (``group_size`` of them).
        finished: ``(batch,)`` bool, True where the response ended with ``eos_id``
            (False: it was cut at ``max_new_tokens``).
    """

    ids: Tensor
    response_mask: Tensor
    prompt_index: Tensor
    finished: Tensor

    @property
    def lengths(self) -> Tensor:
        """``(batch,)``: real tokens per row, prompt and response."""
        return sequence_lengths(self.response_mask)

    @property
    def response_lengths(self) -> Tensor:
        """``(batch,)``: tokens per response."""
        return self.response_mask.sum(1)

    def responses(self) -> list[list[int]]:
        """Each response's token ids (its ``eos_id`` included, if it has one)."""
        return [row[mask].tolist() for row, mask in zip(self.ids, self.response_mask, strict=True)]


def sequence_lengths(response_mask: Tensor) -> Tensor:
    """``(batch,)``: the real tokens of each right-padded row, up to the end of its
    response, from its ``(batch, time)`` response mask (one run of True per row)."""
    return response_mask.int().argmax(1) + response_mask.sum(1)


def sample_rollout(
    policy: nn.Module,
    prompts: Sequence[Sequence[int]],
    group_size: int,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Rollout:
    """Sample ``group_size`` responses to each prompt.

    Args:
        policy: a language model, ``policy(ids (batch, time)) -> logits``.
        prompts: token ids of each prompt, non-empty lists.
        group_size: responses per prompt, >= 1.
        max_new_tokens: the longest response, >= 1.
        eos_id: the token that ends a response.
        pad_id: the token that fills rows after their response (never read).
        temperature: sampling temperature (1 samples the policy itself, as the policy
            gradient assumes).
        generator: the random stream, for reproducible rollouts.

    Returns:
        A :class:`Rollout` of ``len(prompts) * group_size`` rows.
    """
    if isinstance(prompts, str) or not prompts or not all(len(p) > 0 for p in prompts):
        raise ValueError("prompts must be a non-empty list of non-empty token id lists")
    check_int("group_size", group_size)
    check_int("max_new_tokens", max_new_tokens)
    rows, finished = [], []
    for prompt in prompts:
        idx = torch.tensor([list(prompt)] * group_size, dtype=torch.long)
        out = sample(policy, idx, max_new_tokens, temperature, generator=generator, eos_id=eos_id)
        for response in out[:, len(prompt) :].tolist():
            done = eos_id in response
            response = response[: response.index(eos_id) + 1] if done else response
            rows.append((len(prompt), list(prompt) + response))
            finished.append(done)
    width = max(len(row) for _, row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (prompt_length, row) in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, prompt_length : len(row)] = True
    index = torch.arange(len(prompts)).repeat_interleave(group_size)
    return Rollout(ids, mask, index, torch.tensor(finished))
