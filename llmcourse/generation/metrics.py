"""Corpus BLEU and chrF: generated text scored against reference text.

Exact match gives a sentence with one wrong word the same score as a sentence with
every word wrong. The two standard scores of machine translation give partial credit
by counting the n-grams that an output shares with its reference, over a whole corpus:

- **BLEU** (Papineni et al., 2002) on words: the clipped precisions ``p_n`` of the
  n-grams of orders 1 to 4 (an n-gram of the output counts at most as often as it
  occurs in the reference), their geometric mean, and a brevity penalty
  ``BP = exp(1 - r / c)`` when the outputs are shorter in total (``c`` words) than the
  references (``r`` words), since precision alone rewards saying little:
  ``BLEU = 100 BP exp(mean_n ln p_n)``. An order with no match gets sacreBLEU's default
  ``"exp"`` smoothing: the ``j``-th such order counts as ``1 / (2^j total_n)``.
- **chrF** (Popovic, 2015) on characters: the character n-grams of orders 1 to 6 (with
  the spaces removed), their precision and recall averaged over the orders, and the
  F-score ``(1 + b^2) P R / (b^2 P + R)`` with ``b = 2``, which weights recall twice
  as much as precision. It gives credit for a word with the right stem and the wrong
  ending.

Both follow sacreBLEU (Post, 2018) with its default settings, for one reference per
output; the tests check that the numbers agree. Inputs are lists of tokens: BLEU reads
them as words, chrF joins them with spaces first (and then removes the spaces).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from llmcourse.checks import check_int, check_positive


@dataclass(frozen=True)
class BLEUScore:
    """A corpus BLEU score and the statistics it is made of.

    Attributes:
        score: BLEU in [0, 100].
        precisions: the (smoothed) n-gram precisions ``p_1 .. p_N`` in percent.
        brevity_penalty: ``BP`` in (0, 1].
        hyp_len, ref_len: the total number of words of the outputs and of the references.
    """

    score: float
    precisions: tuple[float, ...]
    brevity_penalty: float
    hyp_len: int
    ref_len: int


def _check_corpus(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]]):
    for name, corpus in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(corpus, str) or any(isinstance(s, str) for s in corpus):
            raise TypeError(f"{name} must be a list of token lists, e.g. [['the', 'cat'], ...]")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"got {len(hypotheses)} hypotheses but {len(references)} references; "
            "each output needs its reference"
        )
    if len(hypotheses) == 0:
        raise ValueError("cannot score an empty corpus")


def _ngram_counts(tokens: Sequence, n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(
    hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]], max_order: int = 4
) -> BLEUScore:
    """Corpus BLEU of tokenized outputs against one tokenized reference each.

    Args:
        hypotheses: the outputs, each a list of words.
        references: the reference of each output, a list of words.
        max_order: ``N``, the longest n-gram (4 in BLEU).

    Returns:
        A :class:`BLEUScore`; ``score`` equals ``sacrebleu.corpus_bleu`` on the
        space-joined sentences with ``tokenize="none"``.
    """
    _check_corpus(hypotheses, references)
    check_int("max_order", max_order)
    correct, total = [0] * max_order, [0] * max_order
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references, strict=True):
        hyp_len, ref_len = hyp_len + len(hyp), ref_len + len(ref)
        for n in range(1, max_order + 1):
            hyp_counts, ref_counts = _ngram_counts(hyp, n), _ngram_counts(ref, n)
            correct[n - 1] += sum(min(c, ref_counts[g]) for g, c in hyp_counts.items())
            total[n - 1] += max(len(hyp) - n + 1, 0)
    if hyp_len < ref_len:
        brevity_penalty = math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0
    else:
        brevity_penalty = 1.0
    precisions = [0.0] * max_order
    if not any(correct):
        return BLEUScore(0.0, tuple(precisions), brevity_penalty, hyp_len, ref_len)
    zero_orders = 0
    for n in range(max_order):
        if total[n] == 0:  # outputs too short for this order: its precision stays 0
            break
        if correct[n] == 0:  # "exp" smoothing: 1/2, 1/4, ... of one match
            zero_orders += 1
            precisions[n] = 100.0 / (2**zero_orders * total[n])
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    log_mean = sum(math.log(p) if p > 0 else -9999999999.0 for p in precisions) / max_order
    return BLEUScore(
        brevity_penalty * math.exp(log_mean), tuple(precisions), brevity_penalty, hyp_len, ref_len
    )


def _char_ngrams(tokens: Sequence[str], order: int) -> list[Counter]:
    text = "".join("".join(tokens).split())  # sacreBLEU drops all whitespace
    return [Counter(text[i : i + n] for i in range(len(text) - n + 1)) for n in range(1, order + 1)]


def corpus_chrf(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[str]],
    char_order: int = 6,
    beta: float = 2.0,
) -> float:
    """Corpus chrF of tokenized outputs against one tokenized reference each, in [0, 100].

    The character n-gram counts (hypothesis, reference, matched) of every order are
    summed over the corpus; precision and recall are averaged over the orders that
    occur in both, and combined into the F-score with weight ``beta`` on recall.

    Args:
        hypotheses: the outputs, each a list of tokens.
        references: the reference of each output, a list of tokens.
        char_order: the longest character n-gram (6 in chrF).
        beta: the weight of recall, > 0 (2 in chrF).

    Returns:
        The score; it equals ``sacrebleu.corpus_chrf`` on the space-joined sentences.
    """
    _check_corpus(hypotheses, references)
    check_int("char_order", char_order)
    check_positive("beta", beta)
    hyp_total, ref_total, match_total = [0] * char_order, [0] * char_order, [0] * char_order
    for hyp, ref in zip(hypotheses, references, strict=True):
        for n, (h, r) in enumerate(
            zip(_char_ngrams(hyp, char_order), _char_ngrams(ref, char_order), strict=True)
        ):
            hyp_total[n] += h.total() if r else 0  # sacreBLEU: no reference n-grams, no count
            ref_total[n] += r.total()
            match_total[n] += sum(min(c, r[g]) for g, c in h.items())
    precision = recall = 0.0
    orders = 0
    for n in range(char_order):
        if hyp_total[n] > 0 and ref_total[n] > 0:
            precision += match_total[n] / hyp_total[n]
            recall += match_total[n] / ref_total[n]
            orders += 1
    if orders == 0:
        return 0.0
    precision, recall = precision / orders, recall / orders
    if precision + recall == 0:
        return 0.0
    factor = beta**2
    return 100 * (1 + factor) * precision * recall / (factor * precision + recall)
