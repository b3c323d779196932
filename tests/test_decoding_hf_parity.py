"""Parity of llmcourse.generation's logit transforms with Hugging Face's logits warpers.

``TemperatureLogitsWarper``, ``TopKLogitsWarper``, ``TopPLogitsWarper``, ``MinPLogitsWarper``
and ``RepetitionPenaltyLogitsProcessor`` (from ``transformers``, a test-only dependency; no
model is loaded) are an independent
implementation of the same conventions. On random logits of many shapes and dtypes, with
ties, extreme values, ``-inf`` entries and every ``min_tokens_to_keep`` edge case, the
outputs must be identical (the same floats, ``-inf`` at the same places).

One difference is allowed, and checked to be the only one: when several tokens are tied
with the last token of a top-p nucleus, both keep the same number of them, but Hugging
Face's unstable sort leaves open which ones, while ours keeps the higher ids.
"""

from __future__ import annotations

import math

import pytest
import torch

hf = pytest.importorskip("transformers.generation.logits_process")

from llmcourse.generation import (  # noqa: E402
    apply_repetition_penalty,
    apply_temperature,
    min_p_filter,
    process_logits,
    top_k_filter,
    top_p_filter,
)

pytestmark = pytest.mark.usefixtures("one_thread")


SHAPES = [(1, 1), (1, 2), (4, 7), (3, 50), (2, 1000), (2, 50257)]
KINDS = ["normal", "ties", "extreme", "masked"]
DTYPES = [torch.float32, torch.float64, torch.bfloat16]


def random_logits(shape, kind, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    if kind == "normal":
        logits = 3 * torch.randn(shape, generator=g, dtype=torch.float64)
    elif kind == "ties":  # a few distinct values: ties everywhere, also at the cut
        logits = torch.randint(0, 4, shape, generator=g).double()
    elif kind == "extreme":  # a huge spread: some probabilities underflow to exactly 0
        logits = torch.randn(shape, generator=g, dtype=torch.float64) * 1e4
        logits[..., 0] = 1e30
    else:  # already-filtered tokens, and a row with a single finite logit
        logits = torch.randn(shape, generator=g, dtype=torch.float64)
        logits[torch.rand(shape, generator=g) < 0.5] = -math.inf
        logits[..., -1] = 0.5
        logits[0, :-1] = -math.inf
    return logits.to(dtype)


def hf_apply(warper, logits):
    """HF's warpers take ``(batch, vocab)`` scores; the ids are not used by these three."""
    return warper(None, logits)


def assert_same_up_to_boundary_ties(ours, theirs, logits):
    """Same kept counts and values per row; kept sets differ only on tokens tied with
    the smallest kept logit of their row."""
    kept_ours, kept_theirs = ours > -math.inf, theirs > -math.inf
    assert torch.equal(kept_ours.sum(-1), kept_theirs.sum(-1))
    assert torch.equal(ours.sort(-1).values, theirs.sort(-1).values)
    boundary = theirs.masked_fill(~kept_theirs, math.inf).min(-1, keepdim=True).values
    differ = kept_ours != kept_theirs
    assert torch.equal(logits[differ], boundary.expand_as(logits)[differ])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_temperature_matches_hf(temperature, kind, dtype):
    for shape in SHAPES[:5]:
        logits = random_logits(shape, kind, dtype)
        theirs = hf_apply(hf.TemperatureLogitsWarper(temperature), logits)
        assert torch.equal(apply_temperature(logits, temperature), theirs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("min_tokens_to_keep", [1, 2, 9])
def test_top_k_matches_hf(min_tokens_to_keep, kind, dtype):
    for shape in SHAPES:
        logits = random_logits(shape, kind, dtype)
        for k in (1, 2, 5, shape[-1], shape[-1] + 3):
            warper = hf.TopKLogitsWarper(k, min_tokens_to_keep=min_tokens_to_keep)
            ours = top_k_filter(logits, k, min_tokens_to_keep)
            assert torch.equal(ours, hf_apply(warper, logits)), (shape, k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("min_tokens_to_keep", [1, 3, 2000])
def test_top_p_matches_hf(min_tokens_to_keep, kind, dtype):
    split_ties = 0
    for shape in SHAPES:
        logits = random_logits(shape, kind, dtype, seed=len(shape) + shape[-1])
        for top_p in (1e-6, 0.1, 0.5, 0.9, 0.999, 1.0):
            warper = hf.TopPLogitsWarper(top_p, min_tokens_to_keep=min_tokens_to_keep)
            ours = top_p_filter(logits, top_p, min_tokens_to_keep)
            theirs = hf_apply(warper, logits)
            if kind == "ties" or dtype == torch.bfloat16:  # bfloat16's 8 bits: ties galore
                assert_same_up_to_boundary_ties(ours, theirs, logits)
                split_ties += not torch.equal(ours, theirs)
            else:
                assert torch.equal(ours, theirs), (shape, top_p)
    if kind == "ties" and min_tokens_to_keep == 1 and dtype != torch.bfloat16:
        assert split_ties > 0  # the tie case was really exercised


def test_the_tie_rule_of_top_p():
    # Uniform over 6 tokens, p = 0.5: three are kept by both, ours the three highest ids.
    logits = torch.zeros(1, 6)
    ours = top_p_filter(logits, 0.5)
    theirs = hf_apply(hf.TopPLogitsWarper(0.5), logits)
    assert (ours > -math.inf).tolist() == [[False] * 3 + [True] * 3]
    assert int((theirs > -math.inf).sum()) == 3


@pytest.mark.parametrize("kind", ["normal", "extreme", "masked"])
@pytest.mark.parametrize("min_tokens_to_keep", [1, 4])
def test_the_chain_matches_hf(kind, min_tokens_to_keep):
    for shape in SHAPES:
        logits = random_logits(shape, kind, torch.float32, seed=7)
        for temperature, top_k, top_p in [(0.7, 10, 0.8), (1.3, 3, 0.95), (0.5, 50, 0.3)]:
            chain = hf.LogitsProcessorList(
                [
                    hf.TemperatureLogitsWarper(temperature),
                    hf.TopKLogitsWarper(top_k, min_tokens_to_keep=min_tokens_to_keep),
                    hf.TopPLogitsWarper(top_p, min_tokens_to_keep=min_tokens_to_keep),
                ]
            )
            ours = process_logits(logits, temperature, top_k, top_p, min_tokens_to_keep)
            assert torch.equal(ours, chain(None, logits))


def test_any_leading_shape_matches_hf_row_by_row():
    logits = random_logits((2, 3, 40), "normal", torch.float32)
    flat = logits.reshape(6, 40)
    assert torch.equal(top_p_filter(logits, 0.7).reshape(6, 40), top_p_filter(flat, 0.7))
    theirs = hf_apply(hf.TopPLogitsWarper(0.7), flat)
    assert torch.equal(top_p_filter(logits, 0.7).reshape(6, 40), theirs)
    theirs = hf_apply(hf.TopKLogitsWarper(4), flat)
    assert torch.equal(top_k_filter(logits, 4).reshape(6, 40), theirs)


# ------------------------------------------------------------------ min-p, repetition penalty


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("min_tokens_to_keep", [1, 3, 2000])
def test_min_p_matches_hf(min_tokens_to_keep, kind, dtype):
    for shape in SHAPES:
        logits = random_logits(shape, kind, dtype, seed=3 + shape[-1])
        for min_p in (0.0, 1e-4, 0.05, 0.1, 0.5, 1.0):
            warper = hf.MinPLogitsWarper(min_p, min_tokens_to_keep=min_tokens_to_keep)
            ours = min_p_filter(logits, min_p, min_tokens_to_keep)
            assert torch.equal(ours, hf_apply(warper, logits)), (shape, min_p)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("penalty", [0.5, 1.0, 1.2, 3.0])
def test_repetition_penalty_matches_hf(penalty, dtype):
    g = torch.Generator().manual_seed(5)
    for batch, vocab, time in [(1, 2, 1), (3, 50, 7), (2, 1000, 40), (2, 50257, 12)]:
        logits = (3 * torch.randn(batch, vocab, generator=g)).to(dtype)
        previous = torch.randint(0, vocab, (batch, time), generator=g)
        previous[:, -1] = previous[:, 0]  # a repeated id is penalised once
        theirs = hf.RepetitionPenaltyLogitsProcessor(penalty)(previous, logits.clone())
        assert torch.equal(apply_repetition_penalty(logits, previous, penalty), theirs)


@pytest.mark.parametrize("kind", ["normal", "extreme", "masked"])
def test_the_chain_with_min_p_matches_hf(kind):
    for shape in SHAPES:
        logits = random_logits(shape, kind, torch.float32, seed=11)
        for temperature, top_k, top_p, min_p in [(0.7, 10, 0.8, 0.1), (1.5, 40, 0.99, 0.05)]:
            chain = hf.LogitsProcessorList(
                [
                    hf.TemperatureLogitsWarper(temperature),
                    hf.TopKLogitsWarper(top_k),
                    hf.TopPLogitsWarper(top_p),
                    hf.MinPLogitsWarper(min_p),
                ]
            )
            ours = process_logits(logits, temperature, top_k, top_p, min_p=min_p)
            assert torch.equal(ours, chain(None, logits))
