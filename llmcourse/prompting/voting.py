"""Majority voting: self-consistency over sampled chains, and votes across prompts.

**Self-consistency** {Wang et al., 2023}: instead of the one greedy chain of thought,
sample ``k`` chains at a temperature above zero, read the final answer of each, and
return the answer most of them reach. Different chains make different mistakes, while
correct chains agree, so the vote is right more often than one chain is, as long as
the correct answer is the most frequent one. **Prompt ensembling** votes the same way
over the answers to several phrasings or formats of one question.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

from llmcourse.checks import check_int


def majority_vote(answers: Sequence[Hashable | None]) -> Hashable | None:
    """The most frequent answer that is not None; among equally frequent answers, the one
    that appears first. None when every answer is None (or there are none).

    >>> majority_vote(["12", None, "9", "12", "9"])
    '12'
    """
    if isinstance(answers, str):
        raise TypeError("answers must be a sequence of answers, not one str")
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def vote_accuracy(
    samples: Sequence[Sequence[Hashable | None]], answers: Sequence[Hashable], k: int
) -> float:
    """The accuracy of the majority vote of the first ``k`` samples of every question.

    Args:
        samples: for every question, its sampled answers in the order they were drawn
            (at least ``k`` each; None where a chain gave no answer).
        answers: the correct answer of every question.
        k: how many samples vote, >= 1.
    """
    check_int("k", k)
    if len(samples) != len(answers) or not answers:
        raise ValueError(
            f"need one list of samples per answer, got {len(samples)} and {len(answers)}"
        )
    short = [i for i, s in enumerate(samples) if len(s) < k]
    if short:
        raise ValueError(f"question {short[0]} has fewer than k={k} samples")
    right = sum(majority_vote(s[:k]) == a for s, a in zip(samples, answers, strict=True))
    return right / len(answers)
