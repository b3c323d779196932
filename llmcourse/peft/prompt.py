"""Prompt tuning: a trained soft prompt in front of the input (Lester et al., 2021).

A prompt of words steers a model, but words are a discrete, small set of choices.
Prompt tuning trains ``P`` vectors that the model reads before the input's token
embeddings, as if they were the embeddings of ``P`` tokens that are not in the
vocabulary (a *soft prompt*); the model is frozen. Only ``P d_model`` numbers are trained,
the fewest of any method here, and one batch can mix tasks by giving each sequence its
own prompt.

Unlike prefix tuning (:mod:`llmcourse.peft.prefix`), the prompt enters at the bottom
only: every later layer computes its keys and values from it with frozen weights.
Lester et al. found that this matches full fine-tuning only for models of about ten
billion parameters and more; small models need the deeper reach of a prefix or of
LoRA. Starting the prompt from the embeddings of real tokens (``init_ids``) works better
than a random start.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llmcourse.checks import check_int, check_token_ids
from llmcourse.models.gpt import GPT
from llmcourse.modules.attention import causal_mask
from llmcourse.peft.trainable import freeze


class PromptTuning(nn.Module):
    """A frozen :class:`~llmcourse.models.GPT` that reads ``n_prompt`` trained embeddings
    before its input.

    Args:
        model: the pretrained model; its parameters are frozen (not copied).
        n_prompt: ``P``, the number of soft-prompt vectors.
        init_ids: ``(P,)`` long token ids whose embeddings start the prompt; None starts it
            from ``N(0, 0.02^2)``.

    Parameters: ``prompt: (P, d_model)``.

    ``hidden_states(idx)`` and ``forward(idx)`` take ``idx: (batch, time)`` with
    ``time <= block_size - P`` and return ``(batch, time, d_model)`` vectors and
    ``(batch, time, vocab)`` logits for the input positions only (the prompt's are
    dropped), so that a :class:`~llmcourse.models.FineTuner` can use it as a body.
    """

    def __init__(self, model: GPT, n_prompt: int, init_ids: Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(model, GPT):
            raise TypeError(f"model must be a GPT, got {type(model).__name__}")
        check_int("n_prompt", n_prompt)
        if n_prompt >= model.config.block_size:
            raise ValueError(
                f"n_prompt must leave room for the input in the {model.config.block_size}-"
                f"token context, got {n_prompt}"
            )
        self.model, self.n_prompt = model, n_prompt
        freeze(model)
        table = model.embed.weight
        if init_ids is None:
            prompt = torch.randn(n_prompt, table.shape[1], device=table.device) * 0.02
        else:
            check_token_ids("init_ids", init_ids, ndim=1)
            if len(init_ids) != n_prompt:
                raise ValueError(f"init_ids must hold n_prompt={n_prompt} ids, got {len(init_ids)}")
            prompt = table.detach()[init_ids.to(table.device)].clone()
        self.prompt = nn.Parameter(prompt)

    def hidden_states(self, idx: Tensor) -> Tensor:
        """``idx: (batch, time)`` -> ``(batch, time, d_model)``, after reading the prompt."""
        x = self.model.embed_tokens("idx", idx, past=self.n_prompt)  # checks the room left
        prompt = self.prompt.expand(idx.shape[0], -1, -1)
        length = self.n_prompt + idx.shape[1]
        hidden = self.model.transformer(
            torch.cat([prompt, x], dim=1), causal_mask(length, device=idx.device)
        )
        return hidden[:, self.n_prompt :]

    def forward(self, idx: Tensor) -> Tensor:
        """``idx: (batch, time)`` -> next-token logits ``(batch, time, vocab_size)``."""
        return self.model.lm_head(self.hidden_states(idx))
