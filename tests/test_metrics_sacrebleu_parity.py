"""Parity of llmcourse.generation.metrics with sacreBLEU, the reference implementation.

sacreBLEU is a test-only dependency. Its defaults are the scores' standard settings:
BLEU with 4-gram precisions, "exp" smoothing and the brevity penalty; chrF with
character 6-grams, beta = 2 and whitespace removed. Our functions take token lists, so
sacreBLEU gets the space-joined sentences, with ``tokenize="none"`` for BLEU (the tokens
are already split).
"""

from __future__ import annotations

import random

import pytest
import sacrebleu

from llmcourse.data.translation import translation_pairs
from llmcourse.generation.metrics import corpus_bleu, corpus_chrf


def corrupt(tokens: list[str], rng: random.Random) -> list[str]:
    """A noisy copy: words dropped, repeated, swapped or misspelt, like a weak model's output."""
    out = []
    for word in tokens:
        roll = rng.random()
        if roll < 0.1:
            continue
        if roll < 0.2:
            out += [word, word]
        elif roll < 0.3:
            out.append(word[:-1] + "n" if len(word) > 1 else word)
        else:
            out.append(word)
    if len(out) > 2 and rng.random() < 0.5:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


@pytest.mark.parametrize("seed", range(8))
def test_grammish_corpora(seed):
    rng = random.Random(seed)
    pairs = translation_pairs(40, seed=seed, min_len=3, max_len=14)
    refs = [p.target for p in pairs]
    hyps = [corrupt(ref, rng) for ref in refs]
    hyp_text, ref_text = [" ".join(h) for h in hyps], [" ".join(r) for r in refs]
    expected_bleu = sacrebleu.corpus_bleu(hyp_text, [ref_text], tokenize="none")
    ours = corpus_bleu(hyps, refs)
    assert ours.score == pytest.approx(expected_bleu.score, abs=1e-9)
    assert ours.precisions == pytest.approx(tuple(expected_bleu.precisions), abs=1e-9)
    assert ours.brevity_penalty == pytest.approx(expected_bleu.bp, abs=1e-12)
    assert (ours.hyp_len, ours.ref_len) == (expected_bleu.sys_len, expected_bleu.ref_len)
    expected_chrf = sacrebleu.corpus_chrf(hyp_text, [ref_text]).score
    assert corpus_chrf(hyps, refs) == pytest.approx(expected_chrf, abs=1e-9)


@pytest.mark.parametrize(
    "hyps, refs",
    [
        ([["a"]], [["a", "b", "c", "d", "e"]]),  # too short for 2- to 4-grams
        ([["a", "b"], ["c"]], [["a", "b"], ["d", "e"]]),
        ([["x", "y", "z"]], [["a", "b", "c"]]),  # nothing in common
        ([["ab", "cd", "ef", "gh"]], [["ab", "cd", "xx", "gh", "ij"]]),  # zero 3- and 4-grams
        ([["abcdefgh"]], [["a"]]),  # a reference too short for most character orders
        ([["the", "the", "the", "cat"]], [["the", "cat"]]),  # longer than the reference
    ],
)
def test_edge_cases(hyps, refs):
    hyp_text, ref_text = [" ".join(h) for h in hyps], [" ".join(r) for r in refs]
    expected = sacrebleu.corpus_bleu(hyp_text, [ref_text], tokenize="none")
    assert corpus_bleu(hyps, refs).score == pytest.approx(expected.score, abs=1e-9)
    expected_chrf = sacrebleu.corpus_chrf(hyp_text, [ref_text]).score
    assert corpus_chrf(hyps, refs) == pytest.approx(expected_chrf, abs=1e-9)
