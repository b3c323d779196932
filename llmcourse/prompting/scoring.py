"""Scoring a model's answers to many prompts at once, and generating them.

Exact-match accuracy under greedy decoding needs no decoding loop: greedy decoding
writes the answer's tokens ``a_1 .. a_m`` (the last one a stop token, a line break or
``<|endoftext|>``) exactly when, with the prompt and the answer in the input, the
argmax of the logits at every answer position is the answer's next token. One forward
pass of ``prompt + answer`` therefore decides it, and a batch of right-padded
sequences decides many (a causal model's logits at a position never see the padding
after it). :func:`score_completions` returns that verdict and the answer's
log-probability, which is also the model's confidence in it.

A greedy decoder could in principle spell the answer with other tokens than the
tokenizer's (say ``1`` then ``7`` instead of ``17``); it counts as wrong here, as it
would against the tokenized reference. The course's models are trained on the
tokenizer's spellings only.

:func:`generate_completions` runs the package's one generation loop
(:func:`llmcourse.generation.greedy` and :func:`~llmcourse.generation.sample`) on
prompts grouped by length, so that every batch is a rectangle without padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from llmcourse.checks import check_int
from llmcourse.generation.generate import context_size, eval_no_grad, greedy, sample
from llmcourse.text.bpe import BPETokenizer


@dataclass(frozen=True)
class CompletionScore:
    """How a model scores one completion after its prompt.

    Attributes:
        greedy_match: greedy decoding would write exactly the completion's tokens.
        log_prob: the completion's log-probability (natural log), summed over its tokens.
        n_tokens: the completion's number of tokens.
    """

    greedy_match: bool
    log_prob: float
    n_tokens: int


def _check_pairs(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], limit: int | None) -> None:
    if not pairs:
        raise ValueError("no (prompt, completion) pairs to score")
    for i, (prompt, completion) in enumerate(pairs):
        if not prompt or not completion:
            raise ValueError(f"pair {i}: the prompt and the completion need at least one token")
        if limit is not None and len(prompt) + len(completion) > limit + 1:
            raise ValueError(
                f"pair {i}: {len(prompt)} + {len(completion)} tokens do not fit the model's "
                f"context of {limit} (plus the last token, which is only predicted)"
            )


def score_completions(
    model: nn.Module,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    batch_size: int = 64,
    progress: bool = False,
) -> list[CompletionScore]:
    """Score ``(prompt ids, completion ids)`` pairs in batches (see the module's text).

    The model reads ``prompt + completion[:-1]``; the logits at the last prompt position
    and after predict the completion. Batches are padded on the right with the
    sequence's last token, which nothing reads.
    """
    check_int("batch_size", batch_size)
    _check_pairs(pairs, context_size(model))
    device = next(model.parameters()).device
    scores: list[CompletionScore] = []
    starts = range(0, len(pairs), batch_size)
    with eval_no_grad(model):
        for start in tqdm(starts, desc="scoring", disable=not progress, leave=False):
            batch = pairs[start : start + batch_size]
            rows = [list(p) + list(c)[:-1] for p, c in batch]
            width = max(map(len, rows))
            idx = torch.tensor([r + [r[-1]] * (width - len(r)) for r in rows], device=device)
            log_probs = F.log_softmax(model(idx).float(), dim=-1)  # (batch, width, vocab)
            for row, (prompt, completion) in enumerate(batch):
                positions = torch.arange(len(completion), device=device) + len(prompt) - 1
                target = torch.as_tensor(list(completion), device=device)
                row_lp = log_probs[row, positions]  # (m, vocab)
                scores.append(
                    CompletionScore(
                        greedy_match=bool((row_lp.argmax(-1) == target).all()),
                        log_prob=float(row_lp.gather(1, target[:, None]).sum()),
                        n_tokens=len(completion),
                    )
                )
    return scores


def encode_pairs(
    tokenizer: BPETokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    allowed_special: str | Sequence[str] = (),
) -> list[tuple[list[int], list[int]]]:
    """Encode ``(prompt, completion)`` text pairs separately (special-token strings are
    text unless ``allowed_special`` lets them through)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    return [
        (
            tokenizer.encode(p, allowed_special=allowed_special),
            tokenizer.encode(c, allowed_special=allowed_special),
        )
        for p, c in zip(prompts, completions, strict=True)
    ]


def generate_completions(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    stop_id: int | None = None,
    temperature: float | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> list[list[int]]:
    """The ids each prompt's continuation, up to and without ``stop_id``.

    Greedy when ``temperature`` is None, else sampled at that temperature with
    ``generator``. Prompts of equal length are decoded together, in batches of at most
    ``batch_size``, groups in order of first appearance; the draws of a sampled run
    therefore depend on the prompts' lengths and order, and are the same for the same
    prompts and generator state.
    """
    check_int("max_new_tokens", max_new_tokens)
    check_int("batch_size", batch_size)
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("prompts must be a non-empty list of non-empty id lists")
    device = next(model.parameters()).device
    groups: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(len(prompt), []).append(i)
    batches = [
        indices[start : start + batch_size]
        for indices in groups.values()
        for start in range(0, len(indices), batch_size)
    ]
    out: list[list[int]] = [[] for _ in prompts]
    with eval_no_grad(model):
        for indices in tqdm(batches, desc="generating", disable=not progress, leave=False):
            idx = torch.tensor([list(prompts[i]) for i in indices], device=device)
            if temperature is None:
                ids = greedy(model, idx, max_new_tokens, eos_id=stop_id)
            else:
                ids = sample(
                    model, idx, max_new_tokens, temperature, generator=generator, eos_id=stop_id
                )
            for row, i in enumerate(indices):
                new = ids[row, idx.shape[1] :].tolist()
                out[i] = new[: new.index(stop_id)] if stop_id in new else new
    return out
