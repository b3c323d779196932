"""Speculative decoding: a small draft model guesses, the large target model checks.

Generating ``n`` tokens with a large model takes ``n`` sequential forward passes, each
limited by reading the weights rather than by arithmetic, so scoring several positions
in one pass costs about as much as scoring one. Speculative decoding (Leviathan et al.,
2023; Chen et al., 2023) exploits this. Each round:

1. the draft model proposes ``gamma`` tokens ``x_1 .. x_gamma``, one at a time, drawing
   ``x_i`` from its distribution ``q_i``;
2. the target model scores the prefix plus all proposals in **one** forward pass, which
   gives its distributions ``p_1 .. p_{gamma + 1}`` at the ``gamma + 1`` positions;
3. proposal ``x_i`` is accepted with probability ``min(1, p_i(x_i) / q_i(x_i))``; at the
   first rejection a replacement is drawn from the residual distribution
   ``norm(max(0, p_i - q_i))`` and the round ends; if all ``gamma`` are accepted, a bonus
   token is drawn from ``p_{gamma + 1}``.

Accepting with that probability and resampling from the residual makes every emitted
token an exact sample of the target distribution ``p``, whatever the draft: the chance
of emitting ``x`` is ``min(q(x), p(x)) + (1 - sum_y min(q(y), p(y))) * residual(x) =
p(x)``. A proposal is accepted with probability ``alpha = sum_x min(p(x), q(x))``
(:func:`acceptance_probability`), and a round emits between 1 and ``gamma + 1`` tokens
for one target pass (``(1 - alpha^(gamma+1)) / (1 - alpha)`` on average when ``alpha``
is the same at every position).

The greedy variant proposes the draft's argmax tokens, accepts them while they equal the
target's argmax, and then appends the target's own argmax: its output is exactly
greedy decoding with the target.

Both decode one sequence (batch 1): different rows would accept different numbers of
tokens. The whole sequence, prompt plus ``max_new_tokens``, must fit in the target's
context (``block_size``), so that every position is scored with its full prefix.

With key-value caches (``use_cache=True``, for models that have one, see
:class:`llmcourse.generation.generate.CachedModel`), the draft reads one token per proposal and
the target reads only the round's new tokens; after the verification both caches are
rolled back (truncated) to the prompt plus the accepted tokens, forgetting the keys
and values of the rejected proposals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from llmcourse.checks import check_int, check_token_ids
from llmcourse.generation.generate import CachedModel, context_size, eval_no_grad
from llmcourse.generation.sampling import check_sampling_args, process_logits


@dataclass
class SpeculativeResult:
    """The output of :func:`speculative_sample` or :func:`speculative_greedy`.

    Attributes:
        tokens: ``(1, time + max_new_tokens)`` long, the prompt first.
        proposed: draft tokens proposed, over all rounds.
        accepted: draft tokens accepted.
        target_calls: forward passes of the target model (one per round).
        draft_calls: forward passes of the draft model.
        accepted_per_round: the number of proposals accepted in each round that made
            proposals (a last round may have none).
    """

    tokens: Tensor
    proposed: int = 0
    accepted: int = 0
    target_calls: int = 0
    draft_calls: int = 0
    accepted_per_round: list[int] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        """``accepted / proposed`` (0 when nothing was proposed)."""
        return self.accepted / self.proposed if self.proposed else 0.0


def _check_distributions(**tensors: Tensor) -> None:
    for name, t in tensors.items():
        if not isinstance(t, Tensor) or not t.is_floating_point() or t.ndim < 1:
            raise ValueError(
                f"{name} must be a floating-point tensor (..., vocab) of probabilities"
            )
        if (t < 0).any():
            raise ValueError(f"{name} must not contain negative probabilities")


def acceptance_probability(p: Tensor, q: Tensor) -> Tensor:
    """``alpha = sum_x min(p(x), q(x))``, the probability that a token drawn from the draft
    distribution ``q`` is accepted for the target distribution ``p`` (``= 1 - TV(p, q)``).

    ``p, q: (..., vocab)`` probabilities -> ``(...)``.
    """
    _check_distributions(p=p, q=q)
    if p.shape != q.shape:
        raise ValueError(
            f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}"
        )
    return torch.minimum(p, q).sum(-1)


def residual_distribution(p: Tensor, q: Tensor) -> Tensor:
    """``norm(max(0, p - q))``, what a rejected proposal is replaced by: the mass that the
    target ``p`` puts on tokens beyond what the draft ``q`` already offers.

    ``p, q: (vocab,)`` -> ``(vocab,)``. When ``p == q`` nothing is ever rejected and the
    residual is empty; ``p`` itself is returned then.
    """
    _check_distributions(p=p, q=q)
    residual = (p - q).clamp(min=0)
    total = residual.sum()
    return residual / total if total > 0 else p


def verify(
    p: Tensor, q: Tensor, proposals: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, int]:
    """One round's accept / reject decisions, given the distributions.

    Args:
        p: ``(gamma + 1, vocab)`` target probabilities at the ``gamma + 1`` positions.
        q: ``(gamma, vocab)`` draft probabilities the proposals were drawn from.
        proposals: ``(gamma,)`` long, the draft's tokens.
        generator: for the uniform draws and the resampling.

    Returns:
        ``(tokens, n_accepted)``: ``tokens (n_accepted + 1,)`` long are the accepted
        proposals followed by a resampled token (after a rejection) or a bonus token from
        ``p[gamma]`` (when all were accepted).
    """
    _check_distributions(p=p, q=q)
    if not isinstance(proposals, Tensor) or proposals.dtype != torch.long or proposals.ndim != 1:
        raise ValueError("proposals must be a (gamma,) long tensor")
    gamma = len(proposals)
    if p.ndim != 2 or q.shape != (gamma, p.shape[-1]) or p.shape[0] != gamma + 1:
        raise ValueError(
            "expected p (gamma + 1, vocab), q (gamma, vocab) and proposals (gamma,), got "
            f"{tuple(p.shape)}, {tuple(q.shape)} and {tuple(proposals.shape)}"
        )
    for i, token in enumerate(proposals.tolist()):
        u = torch.rand((), generator=generator, dtype=p.dtype)
        if not u < p[i, token] / q[i, token]:
            residual = residual_distribution(p[i], q[i])
            return torch.cat(
                [proposals[:i], torch.multinomial(residual, 1, generator=generator)]
            ), i
    bonus = torch.multinomial(p[gamma], 1, generator=generator)
    return torch.cat([proposals, bonus]), gamma


def _check_speculative_args(
    target: nn.Module, idx: Tensor, max_new_tokens: int, gamma: int
) -> None:
    check_token_ids("idx", idx)
    if idx.shape[0] != 1:
        raise ValueError(
            f"speculative decoding decodes one sequence: idx must be (1, time), "
            f"got {tuple(idx.shape)}"
        )
    check_int("max_new_tokens", max_new_tokens, minimum=0)
    check_int("gamma", gamma)
    window = context_size(target)
    if window is not None and idx.shape[1] + max_new_tokens > window:
        raise ValueError(
            f"the prompt ({idx.shape[1]} tokens) plus max_new_tokens ({max_new_tokens}) must "
            f"fit in the target's block_size ({window})"
        )


def _check_vocab(target_logits: Tensor, draft_logits: Tensor) -> None:
    if target_logits.shape[-1] != draft_logits.shape[-1]:
        raise ValueError(
            "the draft and target models must share a vocabulary, got "
            f"{draft_logits.shape[-1]} and {target_logits.shape[-1]} tokens"
        )


def speculative_sample(
    target: nn.Module,
    draft: nn.Module,
    idx: Tensor,
    max_new_tokens: int,
    gamma: int = 4,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    *,
    use_cache: bool = True,
) -> SpeculativeResult:
    """Sample ``max_new_tokens`` tokens from the target with speculative sampling.

    Both models' logits are reshaped by :func:`llmcourse.generation.sampling.process_logits` with
    ``temperature``, ``top_k`` and ``top_p``; the tokens then follow exactly the
    distribution of :func:`llmcourse.generation.generate.sample` with the target and those
    settings (not the same draws for the same seed: the random numbers are used
    differently).

    Args:
        target, draft: ``model(idx (batch, time)) -> logits (batch, time, vocab)``, with
            the same vocabulary.
        idx: ``(1, time)`` long prompt.
        max_new_tokens: >= 0.
        gamma: tokens the draft proposes per round, >= 1 (fewer in the last round, so
            that exactly ``max_new_tokens`` are generated).
        generator: for every random draw.
        use_cache: run both models with key-value caches (if they have them); the
            tokens are those of ``use_cache=False``.

    Returns:
        A :class:`SpeculativeResult`.
    """
    check_sampling_args(temperature, top_k, top_p)

    def probs(logits: Tensor) -> Tensor:
        return process_logits(logits, temperature, top_k, top_p).softmax(-1)

    def propose(logits: Tensor) -> tuple[Tensor, Tensor]:
        q = probs(logits)
        return torch.multinomial(q, 1, generator=generator), q

    def check(target_logits: Tensor, q: Tensor, proposals: Tensor) -> tuple[Tensor, int]:
        return verify(probs(target_logits), q, proposals, generator)

    return _speculate(target, draft, idx, max_new_tokens, gamma, propose, check, use_cache)


def speculative_greedy(
    target: nn.Module,
    draft: nn.Module,
    idx: Tensor,
    max_new_tokens: int,
    gamma: int = 4,
    *,
    use_cache: bool = True,
) -> SpeculativeResult:
    """Greedy decoding of the target, accelerated by the draft's greedy guesses.

    Proposals are accepted while they equal the target's argmax; then the target's
    argmax follows. The tokens equal ``greedy(target, idx, max_new_tokens)``. Arguments
    as in :func:`speculative_sample`.
    """

    def propose(logits: Tensor) -> tuple[Tensor, Tensor]:
        return logits.argmax(-1, keepdim=True), logits

    def check(target_logits: Tensor, _: Tensor, proposals: Tensor) -> tuple[Tensor, int]:
        best = target_logits.argmax(-1)  # (gamma + 1,)
        mismatches = (best[:-1] != proposals).nonzero()
        n = int(mismatches[0, 0]) if len(mismatches) else len(proposals)
        return torch.cat([proposals[:n], best[n : n + 1]]), n

    return _speculate(target, draft, idx, max_new_tokens, gamma, propose, check, use_cache)


def _speculate(
    target: nn.Module,
    draft: nn.Module,
    idx: Tensor,
    max_new_tokens: int,
    gamma: int,
    propose: Callable[[Tensor], tuple[Tensor, Tensor]],
    check: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, int]],
    use_cache: bool,
) -> SpeculativeResult:
    """The rounds shared by both variants.

    ``propose(draft logits (1, vocab)) -> (token (1, 1), q (1, ...))`` picks a proposal;
    ``check(target logits (g + 1, vocab), q (g, ...), proposals (g,)) -> (tokens, n)``
    returns the round's new tokens and the number of accepted proposals.
    """
    _check_speculative_args(target, idx, max_new_tokens, gamma)
    result = SpeculativeResult(tokens=idx)
    target_run, draft_run = CachedModel(target, use_cache), CachedModel(draft, use_cache)
    with eval_no_grad(target, draft):
        while (remaining := max_new_tokens - (result.tokens.shape[1] - idx.shape[1])) > 0:
            g = min(gamma, remaining - 1)  # a round emits up to g + 1 tokens
            sequence, qs = result.tokens, []
            for _ in range(g):
                draft_logits = draft_run.logits(sequence)[:, -1]  # (1, vocab)
                token, q = propose(draft_logits)
                sequence = torch.cat([sequence, token], dim=1)
                qs.append(q)
            target_logits = target_run.logits(sequence, last=g + 1)[0]  # (g + 1, vocab)
            if g:
                _check_vocab(target_logits, draft_logits)
            proposals = sequence[0, result.tokens.shape[1] :]  # (g,)
            q = torch.cat(qs) if qs else target_logits[:0]
            new, n_accepted = check(target_logits, q, proposals)
            accepted_length = result.tokens.shape[1] + n_accepted
            target_run.truncate(accepted_length)  # forget the rejected proposals
            draft_run.truncate(accepted_length)
            result.tokens = torch.cat([result.tokens, new[None]], dim=1)
            result.proposed += g
            result.accepted += n_accepted
            result.draft_calls += g
            result.target_calls += 1
            if g:
                result.accepted_per_round.append(n_accepted)
    return result
