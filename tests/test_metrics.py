"""Unit tests for llmcourse.generation.metrics: corpus BLEU and chrF worked out by hand.

Parity with sacreBLEU on many random corpora is in ``test_metrics_sacrebleu_parity.py``.
"""

from __future__ import annotations

import math

import pytest

from llmcourse.generation.metrics import BLEUScore, corpus_bleu, corpus_chrf

REF = "the cat sat on the mat".split()


def test_identical_corpus_scores_100():
    refs = [REF, "a dog".split()]
    bleu = corpus_bleu(refs, refs, max_order=2)
    assert math.isclose(bleu.score, 100.0) and bleu.brevity_penalty == 1.0
    assert math.isclose(corpus_chrf(refs, refs), 100.0)


def test_bleu_by_hand():
    hyp = "the cat the mat".split()
    # unigrams: the x2 (ref has 2), cat, mat: 4 of 4; bigrams: the cat, cat the, the mat: 2 of 3
    # trigrams: the cat the, cat the mat: 0 of 2 -> exp smoothing 1 / (2 * 2)
    # 4-grams: the cat the mat: 0 of 1 -> 1 / (4 * 1)
    bleu = corpus_bleu([hyp], [REF])
    assert bleu.precisions == pytest.approx((100.0, 200 / 3, 25.0, 25.0))
    assert bleu.hyp_len == 4 and bleu.ref_len == 6
    bp = math.exp(1 - 6 / 4)
    assert bleu.brevity_penalty == pytest.approx(bp)
    expected = bp * math.exp((math.log(1.0) + math.log(2 / 3) + 2 * math.log(0.25)) / 4) * 100
    assert bleu.score == pytest.approx(expected)


def test_bleu_clips_repeated_words():
    # "the the the" has three unigram "the", the reference only two: precision 2/3
    bleu = corpus_bleu([["the", "the", "the"]], [REF], max_order=1)
    assert bleu.precisions == pytest.approx((200 / 3,))


def test_bleu_is_corpus_level_not_a_mean_of_sentences():
    good, bad = ["a", "b", "c", "d"], ["x", "y", "z", "w"]
    corpus = corpus_bleu([good, bad], [good, good], max_order=1)
    assert corpus.precisions[0] == pytest.approx(50.0)  # 4 of 8 unigrams


def test_no_match_gives_zero():
    assert corpus_bleu([["x", "y"]], [["a", "b"]]).score == 0.0
    assert corpus_chrf([["xyz"]], [["abc"]]) == 0.0


def test_chrf_by_hand():
    # hyp "ab" vs ref "abc", orders 1 and 2:
    # order 1: hyp a b (2), ref a b c (3), match 2 -> P = 1, R = 2/3
    # order 2: hyp ab (1), ref ab bc (2), match 1 -> P = 1, R = 1/2
    p, r = 1.0, (2 / 3 + 1 / 2) / 2
    expected = 100 * 5 * p * r / (4 * p + r)
    assert corpus_chrf([["ab"]], [["abc"]], char_order=2) == pytest.approx(expected)


def test_chrf_ignores_spaces_and_credits_word_parts():
    assert corpus_chrf([["ab", "c"]], [["abc"]]) == pytest.approx(100.0)
    # a wrong ending keeps most character n-grams: chrF gives partial credit, BLEU none
    hyp, ref = [["vidin"]], [["vidi"]]
    assert 50 < corpus_chrf(hyp, ref) < 100
    assert corpus_bleu(hyp, ref).score == 0.0


def test_returns_a_bleu_score():
    assert isinstance(corpus_bleu([REF], [REF]), BLEUScore)


@pytest.mark.parametrize("metric", [corpus_bleu, corpus_chrf])
def test_rejects_bad_input(metric):
    with pytest.raises(ValueError, match="references"):
        metric([REF, REF], [REF])
    with pytest.raises(ValueError, match="empty"):
        metric([], [])
    with pytest.raises(TypeError, match="token lists"):
        metric(["the cat"], ["the cat"])
    with pytest.raises(ValueError):
        metric([REF], [REF], 0)
