"""Jelinek-Mercer interpolation of n-gram orders, with its weights fit on held-out text.

An interpolated model of order ``n`` mixes the maximum-likelihood estimates of every
order, and a uniform distribution so that no word of the vocabulary gets zero
(Jelinek and Mercer, 1980):

    P(w | h) = l_0 / |V| + l_1 P_MLE(w) + l_2 P_MLE(w | h_{-1}) + ... + l_n P_MLE(w | h_{-n+1..-1}),

with ``l_m >= 0`` and ``sum_m l_m = 1``. The weights are not fit on the training text,
where the highest order always wins (it has seen every n-gram), but on held-out
*development* text, by expectation-maximisation: each predicted token is explained by
one of the ``n + 1`` components, the E-step computes the posterior of each component
for each token, ``r_tm = l_m P_m(t) / sum_j l_j P_j(t)``, and the M-step sets
``l_m = mean_t r_tm``. Every step lowers (never raises) the development cross-entropy.

The estimates ``P_MLE`` are read from the counts of a fitted
:class:`~llmcourse.classic.ngram.NGramLM` (any smoothing: the counts are the same), with
its padding and its ``<unk>`` conventions, so that the numbers are comparable with the
model's own perplexity. Column ``m`` of :func:`order_probabilities` equals
``NGramLM(m, smoothing="mle").prob`` of a model fit on the same sentences.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from llmcourse.checks import check_int, check_positive
from llmcourse.classic.ngram import NGramLM, pad
from llmcourse.text.words import BOS, UNK


def _check_fitted(lm: NGramLM) -> None:
    if not isinstance(lm, NGramLM):
        raise TypeError(f"lm must be an NGramLM, got {type(lm).__name__}")
    if lm.vocab is None:
        raise RuntimeError("the model is not fitted yet; call fit(sentences) first")


def _components(lm: NGramLM, word: str, padded_context: Sequence[str]) -> list[float]:
    """``[1/|V|, P_MLE(w), P_MLE(w | 1 word), ..., P_MLE(w | n-1 words)]`` for one token."""
    row = [1.0 / len(lm.vocab)]
    for m in range(1, lm.order + 1):
        context = tuple(padded_context[len(padded_context) - (m - 1) :]) if m > 1 else ()
        followers = lm.counts[m].get(context)
        total = lm._count_totals[m].get(context, 0)
        row.append(followers[word] / total if total else 0.0)
    return row


def order_probabilities(lm: NGramLM, sentences: Iterable[Sequence[str]]) -> torch.Tensor:
    """The ``n + 1`` component probabilities of every predicted token of ``sentences``.

    Args:
        lm: a fitted :class:`NGramLM` of order ``n`` (its counts are used, not its smoothing).
        sentences: tokenized sentences; every word and each ``</s>`` is predicted, in order.

    Returns:
        ``(N, n + 1)`` float64: column 0 is the uniform ``1 / |V|``, column ``m`` the
        maximum-likelihood ``P(w_t | the m - 1 previous words)`` (0 where unseen).
    """
    _check_fitted(lm)
    rows = []
    for sentence in sentences:
        if isinstance(sentence, str):
            raise TypeError("sentences must be sequences of words, not str; tokenize them first")
        padded = pad(lm.vocab.lookup(sentence), lm.order)
        for t in range(lm.order - 1, len(padded)):
            rows.append(_components(lm, padded[t], padded[t - lm.order + 1 : t]))
    if not rows:
        raise ValueError("cannot compute probabilities of an empty corpus")
    return torch.tensor(rows, dtype=torch.float64)


def _check_weights(weights: Sequence[float] | torch.Tensor, size: int) -> torch.Tensor:
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if weights.shape != (size,):
        raise ValueError(f"weights must have shape ({size},), got {tuple(weights.shape)}")
    if (weights < 0).any() or not math.isclose(weights.sum().item(), 1.0, abs_tol=1e-9):
        raise ValueError(f"weights must be >= 0 and sum to 1, got {weights.tolist()}")
    return weights


def interpolated_cross_entropy(
    components: torch.Tensor, weights: Sequence[float] | torch.Tensor
) -> float:
    """Mean ``-ln sum_m l_m P_m(t)`` over the tokens, in nats (``inf`` if a token gets 0).

    Args:
        components: ``(N, K)`` from :func:`order_probabilities`.
        weights: ``(K,)`` the mixture weights ``l_m``, >= 0, summing to 1.
    """
    if components.ndim != 2 or components.shape[0] == 0:
        raise ValueError(f"components must have shape (N >= 1, K), got {tuple(components.shape)}")
    mixture = components @ _check_weights(weights, components.shape[1])
    return -mixture.log().mean().item()


def fit_interpolation_weights(
    components: torch.Tensor, max_iterations: int = 500, tol: float = 1e-9
) -> tuple[torch.Tensor, list[float]]:
    """EM for the mixture weights that minimise the cross-entropy of ``components``.

    Starts from equal weights and stops after ``max_iterations`` steps or when one step
    lowers the cross-entropy by less than ``tol`` nats.

    Args:
        components: ``(N, K)`` component probabilities of development tokens, from
            :func:`order_probabilities`; column 0 (the uniform one) must be positive.
        max_iterations: the most EM steps, >= 1.
        tol: the smallest improvement in nats per token that continues, > 0.

    Returns:
        ``weights: (K,)`` float64 summing to 1, and the cross-entropy before the first
        step and after every step (non-increasing).
    """
    if components.ndim != 2 or components.shape[0] == 0:
        raise ValueError(f"components must have shape (N >= 1, K), got {tuple(components.shape)}")
    if (components < 0).any() or not (components[:, 0] > 0).all():
        raise ValueError("components must be >= 0, with a positive first (uniform) column")
    check_int("max_iterations", max_iterations)
    check_positive("tol", tol)
    components = components.to(torch.float64)
    k = components.shape[1]
    weights = torch.full((k,), 1.0 / k, dtype=torch.float64)
    history = [interpolated_cross_entropy(components, weights)]
    for _ in range(max_iterations):
        posterior = components * weights  # (N, K): l_m P_m(t), normalised below
        posterior /= posterior.sum(dim=1, keepdim=True)
        weights = posterior.mean(dim=0)
        weights /= weights.sum()  # exact 1 despite rounding
        history.append(interpolated_cross_entropy(components, weights))
        if history[-2] - history[-1] < tol:
            break
    return weights, history


def interpolated_prob(
    lm: NGramLM, weights: Sequence[float] | torch.Tensor, word: str, context: Sequence[str] = ()
) -> float:
    """``P(word | context)`` of the interpolated model, the same as a row of
    :func:`order_probabilities` times ``weights``."""
    _check_fitted(lm)
    weights = _check_weights(weights, lm.order + 1)
    if not isinstance(word, str):
        raise TypeError(f"word must be a str, got {type(word).__name__}")
    if word == BOS:
        raise ValueError(f"{BOS!r} is padding and is never predicted")
    word = word if word in lm.vocab else UNK
    row = torch.tensor(_components(lm, word, lm._context(context)), dtype=torch.float64)
    return (row @ weights).item()
