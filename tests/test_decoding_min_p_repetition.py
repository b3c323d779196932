"""Unit tests of the later additions to llmcourse.generation: min-p filtering, the repetition
penalty, and the length normalizers of beam search (``n ** alpha`` and Wu et al.'s form).

Parity of min-p and of the repetition penalty with Hugging Face's processors is in
``test_decoding_hf_parity.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_decoding import exhaustive, gpt
from tiny_models import Bigram, chi_square_p_value

from llmcourse.generation import (
    LENGTH_FORMS,
    apply_repetition_penalty,
    beam_search,
    greedy,
    length_normalizer,
    min_p_filter,
    process_logits,
    sample,
    sample_next,
    top_p_filter,
)

INF = math.inf
pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ min-p


def test_min_p_keeps_tokens_above_a_share_of_the_top_probability():
    probs = torch.tensor([0.5, 0.3, 0.12, 0.05, 0.03])
    logits = probs.log()
    # threshold = min_p * 0.5: 0.2 * 0.5 = 0.1 keeps 0.5, 0.3 and 0.12
    kept = min_p_filter(logits, 0.2) > -INF
    assert kept.tolist() == [True, True, True, False, False]
    assert (min_p_filter(logits, 0.5) > -INF).tolist() == [True, True, False, False, False]
    assert torch.equal(min_p_filter(logits, 0.0), logits)  # keeps everything
    assert (min_p_filter(logits, 1.0) > -INF).tolist() == [True, False, False, False, False]
    # the kept logits are unchanged
    filtered = min_p_filter(logits, 0.2)
    assert torch.equal(filtered[:3], logits[:3])


def test_min_p_threshold_scales_with_confidence():
    # Same tail token (p = 0.04) in a confident and in a flat distribution, min_p = 0.1.
    confident = torch.tensor([0.9, 0.06, 0.04]).log()
    flat = torch.tensor([0.3, 0.3, 0.2, 0.16, 0.04]).log()
    assert not bool(min_p_filter(confident, 0.1)[2] > -INF)  # 0.04 < 0.09: removed
    assert bool(min_p_filter(flat, 0.1)[4] > -INF)  # 0.04 >= 0.03: kept


def test_min_p_ties_at_the_top_and_min_tokens_to_keep():
    logits = torch.tensor([2.0, 2.0, 0.0, -1.0])
    assert (min_p_filter(logits, 1.0) > -INF).tolist() == [True, True, False, False]
    kept = min_p_filter(logits, 1.0, min_tokens_to_keep=3) > -INF
    assert kept.tolist() == [True, True, True, False]
    assert int((min_p_filter(logits, 1.0, min_tokens_to_keep=9) > -INF).sum()) == 4


def test_min_p_rows_are_independent_on_any_leading_shape():
    logits = torch.randn(2, 3, 30, generator=torch.Generator().manual_seed(0)) * 3
    whole = min_p_filter(logits, 0.1)
    for i in range(2):
        for j in range(3):
            assert torch.equal(whole[i, j], min_p_filter(logits[i, j], 0.1))


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, "0.1", True])
def test_min_p_is_validated(bad):
    with pytest.raises(ValueError, match=r"min_p must be in \[0, 1\]"):
        min_p_filter(torch.zeros(3), bad)
    with pytest.raises(ValueError, match=r"min_p must be in \[0, 1\]"):
        min_p_filter(torch.zeros(3), None)
    with pytest.raises(ValueError, match=r"min_p must be in \[0, 1\]"):
        sample(gpt(), torch.tensor([[1]]), 2, min_p=bad)


def test_process_logits_applies_min_p_last():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(1)) * 2
    chained = process_logits(logits, 0.7, 20, 0.9, min_p=0.05)
    by_hand = min_p_filter(process_logits(logits, 0.7, 20, 0.9), 0.05)
    assert torch.equal(chained, by_hand)
    # min_p = None leaves the old chain as it was
    assert torch.equal(process_logits(logits, 0.7, 20, 0.9), process_logits(logits, 0.7, 20, 0.9))


def test_sample_next_with_min_p_draws_from_the_filtered_distribution():
    probs = torch.tensor([0.4, 0.3, 0.2, 0.07, 0.03])
    g = torch.Generator().manual_seed(0)
    draws = sample_next(probs.log().expand(20_000, 5), min_p=0.2, generator=g)
    counts = torch.bincount(draws, minlength=5)
    expected = torch.tensor([0.4, 0.3, 0.2, 0.0, 0.0]) / 0.9  # 0.07 and 0.03 < 0.08
    assert counts[3:].sum() == 0
    assert chi_square_p_value(counts, expected) > 1e-3


def test_min_p_and_top_p_differ_on_a_flat_tail():
    # top-p must reach the mass, min-p looks only at the ratio to the best token
    probs = torch.tensor([0.5] + [0.5 / 50] * 50)
    logits = probs.log()
    assert int((top_p_filter(logits, 0.895) > -INF).sum()) == 41  # 0.5 + 40 * 0.01 >= 0.895
    assert int((min_p_filter(logits, 0.1) > -INF).sum()) == 1  # 0.01 < 0.05: the tail goes


# ------------------------------------------------------------------ repetition penalty


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0, 0.0]])
    previous = torch.tensor([[0, 1, 1, 4]])  # token 1 twice: penalised once
    out = apply_repetition_penalty(logits, previous, 2.0)
    assert out.tolist() == [[1.0, -2.0, 0.5, 3.0, 0.0]]
    assert torch.equal(apply_repetition_penalty(logits, previous, 1.0), logits)
    # < 1 rewards repetition
    assert apply_repetition_penalty(logits, previous, 0.5).tolist() == [[4.0, -0.5, 0.5, 3.0, 0.0]]


def test_repetition_penalty_lowers_seen_tokens_against_unseen_ones():
    # A penalty > 1 never raises a seen token's logit and leaves the others alone, so the
    # odds of any seen token against any unseen one can only fall. (Its probability alone
    # can rise: other seen tokens may lose more.)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        logits = torch.randn(3, 12, generator=g, dtype=torch.float64) * 3
        previous = torch.randint(0, 12, (3, 5), generator=g)
        after = apply_repetition_penalty(logits, previous, 1.5)
        for row in range(3):
            seen = torch.zeros(12, dtype=torch.bool)
            seen[previous[row]] = True
            assert (after[row][seen] < logits[row][seen]).all()  # no logit is exactly 0 here
            assert torch.equal(after[row][~seen], logits[row][~seen])
            odds_before = logits[row][seen][:, None] - logits[row][~seen][None, :]
            odds_after = after[row][seen][:, None] - after[row][~seen][None, :]
            assert (odds_after < odds_before).all()


def test_repetition_penalty_is_validated():
    logits = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="penalty must be a finite number > 0"):
        apply_repetition_penalty(logits, torch.zeros(2, 3, dtype=torch.long), 0.0)
    with pytest.raises(ValueError, match="previous must be a non-empty"):
        apply_repetition_penalty(logits, torch.zeros(2, 3), 1.2)
    with pytest.raises(ValueError, match="logits must be"):
        apply_repetition_penalty(logits, torch.zeros(3, 3, dtype=torch.long), 1.2)
    with pytest.raises(ValueError, match="repetition_penalty must be a finite number > 0"):
        greedy(gpt(), torch.tensor([[1]]), 2, repetition_penalty=-1.0)


def penalised_argmax_loop(model, idx, n, penalty):
    for _ in range(n):
        with torch.no_grad():
            logits = model(idx)[:, -1]
        logits = apply_repetition_penalty(logits, idx, penalty)
        idx = torch.cat([idx, logits.argmax(-1, keepdim=True)], dim=1)
    return idx


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_with_a_repetition_penalty_is_the_penalised_argmax_loop(use_cache):
    model = gpt(2, vocab_size=9).eval()
    idx = torch.tensor([[1, 4], [0, 0]])
    ours = greedy(model, idx, 10, use_cache=use_cache, repetition_penalty=1.3)
    assert torch.equal(ours, penalised_argmax_loop(model, idx, 10, 1.3))
    assert torch.equal(greedy(model, idx, 10, repetition_penalty=1.0), greedy(model, idx, 10))


def test_a_strong_repetition_penalty_breaks_a_loop():
    # A bigram that cycles 1 -> 2 -> 1 with probability 0.6 (token 3 has 0.2).
    loop = Bigram([[0.1, 0.6, 0.2, 0.1], [0.1, 0.1, 0.6, 0.2], [0.1, 0.6, 0.1, 0.2], [0.25] * 4])
    plain = greedy(loop, torch.tensor([[0]]), 6)[0].tolist()
    assert plain == [0, 1, 2, 1, 2, 1, 2]
    # The logits are log-probabilities, all negative: a penalty multiplies them. At 2, a
    # seen 0.6 (log -0.51 -> -1.02) still beats an unseen 0.2 (-1.61): the loop stays.
    mild = greedy(loop, torch.tensor([[0]]), 6, repetition_penalty=2.0)[0].tolist()
    assert mild == plain
    # At 4 (-2.04 < -1.61), after 0 1 2 the unseen 3 wins; then every token is seen, and
    # the uniform row of 3 falls to the lowest id.
    strong = greedy(loop, torch.tensor([[0]]), 6, repetition_penalty=4.0)[0].tolist()
    assert strong == [0, 1, 2, 3, 0, 1, 2]


def test_sample_with_min_p_and_penalty_is_written_out_for_the_same_seed():
    model = gpt(3, vocab_size=11).eval()
    idx = torch.tensor([[2, 5]])
    ours = sample(
        model,
        idx,
        8,
        temperature=0.8,
        generator=torch.Generator().manual_seed(7),
        min_p=0.1,
        repetition_penalty=1.4,
    )
    g = torch.Generator().manual_seed(7)
    expected = idx
    for _ in range(8):
        with torch.no_grad():
            logits = model(expected)[:, -1]
        logits = apply_repetition_penalty(logits, expected, 1.4)
        probs = process_logits(logits, 0.8, min_p=0.1).softmax(-1)
        expected = torch.cat([expected, torch.multinomial(probs, 1, generator=g)], dim=1)
    assert torch.equal(ours, expected)


# ------------------------------------------------------------------ length normalizers


def test_length_normalizers():
    assert length_normalizer(4, 0.0) == 1.0
    assert length_normalizer(4, 1.0) == 4.0
    assert length_normalizer(9, 0.5) == pytest.approx(3.0)
    assert length_normalizer(7, 1.0, "gnmt") == pytest.approx(2.0)  # (5 + 7) / 6
    assert length_normalizer(19, 0.5, "gnmt") == pytest.approx(2.0)  # sqrt(24 / 6)
    for form in LENGTH_FORMS:
        assert length_normalizer(1, 0.7, form) == pytest.approx(1.0)
        values = [length_normalizer(n, 0.6, form) for n in range(1, 30)]
        assert values == sorted(values)  # grows with n
    # Wu et al.'s form grows more slowly than n ** alpha
    assert length_normalizer(10, 0.6, "gnmt") < length_normalizer(10, 0.6)


def test_length_normalizer_is_validated():
    with pytest.raises(ValueError, match="form must be one of"):
        length_normalizer(3, 1.0, "wu")
    with pytest.raises(ValueError, match="length must be an integer >= 1"):
        length_normalizer(0, 1.0)
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        length_normalizer(3, math.inf)
    with pytest.raises(ValueError, match="length_form must be one of"):
        beam_search(gpt(), torch.tensor([[1]]), 2, 3, length_form="wu")


@pytest.mark.parametrize("eos_id, alpha", [(2, 0.6), (2, 2.0), (0, -0.5)])
def test_a_wide_beam_with_wu_et_al_form_finds_the_exact_best_sequences(eos_id, alpha):
    model = gpt(4, vocab_size=4).double().eval()
    prompt, n = [1, 3], 4
    found = beam_search(model, torch.tensor([prompt]), 4**n, n, eos_id, alpha, length_form="gnmt")
    rescored = sorted(
        (
            (tokens, total, total / length_normalizer(len(tokens) - 2, alpha, "gnmt"))
            for tokens, total, _ in exhaustive(model, prompt, n, eos_id)
        ),
        key=lambda r: r[2],
        reverse=True,
    )
    assert len(found) == len(rescored)
    for hyp, (tokens, total, score) in zip(found[:10], rescored[:10], strict=True):
        assert hyp.tokens.tolist() == tokens
        assert hyp.log_prob == pytest.approx(total, abs=1e-10)
        assert hyp.score == pytest.approx(score, abs=1e-10)


def test_the_two_forms_can_pick_different_hypotheses():
    # From 0: eos (1) at 0.5, or 2 -> 3 -> eos with 0.4 * 0.8 * 0.8 (see test_decoding).
    # alpha = 1: n ** 1 prefers the long one (-1.36 / 3 > -0.69); Wu's (5 + n) / 6 grows
    # from 1 to 4/3 only, and the short one wins (-0.69 > -1.36 / (8 / 6) = -1.02).
    model = Bigram([
        [0.05, 0.5, 0.4, 0.05], [0.25] * 4, [0.05, 0.1, 0.05, 0.8], [0.05, 0.8, 0.1, 0.05],
    ])  # fmt: skip
    idx = torch.tensor([[0]])
    power = beam_search(model, idx, 3, 4, eos_id=1, length_penalty=1.0)[0]
    wu = beam_search(model, idx, 3, 4, eos_id=1, length_penalty=1.0, length_form="gnmt")[0]
    assert power.tokens.tolist() == [0, 2, 3, 1]
    assert wu.tokens.tolist() == [0, 1]
    assert wu.score == pytest.approx(math.log(0.5))
