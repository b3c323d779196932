"""Grading tests for the Chapter 8 exercises (solutions/ch08_generation.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``: the points of a
parametrized test are shared by its cases, and an answer's points add up to those
announced in the notebook's heading. Inputs are drawn from the ``fresh_seed``; the
expected values come from ``llmcourse.generation`` (tested for parity with Hugging Face's
logits warpers), ``llmcourse.generation.speculative`` (tested against hand-computed rounds), or a
computation written out in the test.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch
from torch import nn

from llmcourse import generation
from llmcourse.grading.expect import expect_float, expect_tensor, expect_type

NOTEBOOK = "ch08_decoding"

# What each answer must write itself (see llmcourse.grading.offlimits), besides the
# package's functions named like the answers.
SAMPLING = "llmcourse.generation.sampling"
SPECULATIVE = "llmcourse.generation.speculative"
OFF_LIMITS = {
    "temperature_softmax": [f"{SAMPLING}.apply_temperature", f"{SAMPLING}.process_logits"],
    "top_k_filter": [f"{SAMPLING}.process_logits"],
    "top_p_filter": [f"{SAMPLING}.process_logits"],
    "speculative_verify": [
        f"{SPECULATIVE}.verify",
        f"{SPECULATIVE}.acceptance_probability",
        f"{SPECULATIVE}.residual_distribution",
        f"{SPECULATIVE}.speculative_sample",
    ],
}
DTYPES = [torch.float32, torch.float64]
TOLERANCE = {torch.float32: {"rtol": 1e-5, "atol": 1e-6}, torch.float64: {"rtol": 1e-10}}


def random_logits(seed: int, dtype: torch.dtype) -> torch.Tensor:
    """Logits of a random shape (1 to 2 leading axes), spread enough to have a tail."""
    rng = random.Random(seed)
    shape = [rng.randint(1, 4) for _ in range(rng.randint(0, 2))] + [rng.randint(2, 40)]
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator, dtype=torch.float64) * 2.5).to(dtype)


# ------------------------------------------------------------ temperature_softmax
@pytest.mark.exercise(
    "temperature_softmax",
    points=0.75,
    hint="Divide the logits by t, then take the softmax over the last axis (dim=-1).",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_temperature_softmax_matches_reference(student, fresh_seed, dtype):
    rng = random.Random(fresh_seed)
    for i in range(3):
        logits = random_logits(fresh_seed + i, dtype)
        t = rng.choice([0.1, 0.5, 1.0, 2.0, 7.5])
        expected = generation.apply_temperature(logits, t).softmax(-1)
        got = student.call("temperature_softmax", logits, t)
        expect_tensor(got, expected, **TOLERANCE[dtype], what=f"the distribution at t={t}")


@pytest.mark.exercise(
    "temperature_softmax",
    points=0.25,
    hint="Raise ValueError when t <= 0.",
)
@pytest.mark.parametrize("t", [0.0, -1.0])
def test_temperature_softmax_rejects_bad_temperature(student, t):
    with pytest.raises(ValueError):
        student.call("temperature_softmax", torch.zeros(3), t)


# ------------------------------------------------------------------- top_k_filter
@pytest.mark.exercise(
    "top_k_filter",
    points=0.5,
    hint="A token tied with the k-th largest logit is kept: compare each logit with the "
    "k-th largest value (logits.topk(k).values[..., -1:]).",
)
def test_top_k_filter_keeps_ties(student):
    got = student.call("top_k_filter", torch.tensor([1.0, 3.0, 3.0, 0.0]), 1)
    expect_tensor(got, torch.tensor([-math.inf, 3.0, 3.0, -math.inf]), what="top-1 with a tie")
    got = student.call("top_k_filter", torch.tensor([[2.0, 1.0, 1.0, 1.0, 0.0]]), 2)
    expected = torch.tensor([[2.0, 1.0, 1.0, 1.0, -math.inf]])
    expect_tensor(got, expected, what="top-2 with a three-way tie")


@pytest.mark.exercise(
    "top_k_filter",
    points=1,
    hint="Work on the last axis for any number of leading axes; k larger than the "
    "vocabulary keeps every token.",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_top_k_filter_matches_reference(student, fresh_seed, dtype):
    rng = random.Random(fresh_seed)
    for i in range(3):
        logits = random_logits(fresh_seed + i, dtype)
        # round some logits so that some rows have ties
        if i == 2:
            logits = (logits * 2).round() / 2
        k = rng.randint(1, logits.shape[-1] + 3)
        expected = generation.top_k_filter(logits, k)
        got = student.call("top_k_filter", logits, k)
        expect_tensor(got, expected, what=f"top-{k} of logits {tuple(logits.shape)}")


@pytest.mark.exercise("top_k_filter", points=0.5, hint="Raise ValueError when k < 1.")
@pytest.mark.parametrize("k", [0, -2])
def test_top_k_filter_rejects_bad_k(student, k):
    with pytest.raises(ValueError):
        student.call("top_k_filter", torch.zeros(4), k)


# ------------------------------------------------------------------- top_p_filter
@pytest.mark.exercise(
    "top_p_filter",
    points=0.5,
    hint="Sort the probabilities in decreasing order; keep token j when the mass of the "
    "tokens before it is < p.",
)
def test_top_p_filter_hand_example(student):
    logits = torch.tensor([0.1, 0.5, 0.25, 0.15], dtype=torch.float64).log()
    inf = -math.inf
    cases = [(0.5, [inf, 1, inf, inf]), (0.7, [inf, 1, 1, inf]), (0.8, [inf, 1, 1, 1])]
    for p, kept in [*cases, (1.0, [1, 1, 1, 1])]:
        expected = torch.where(torch.tensor(kept) == 1, logits, inf)
        got = student.call("top_p_filter", logits, p)
        expect_tensor(got, expected, what=f"the nucleus for p={p}")


@pytest.mark.exercise(
    "top_p_filter",
    points=1,
    hint="Sort each row, cumsum the sorted probabilities, and scatter the decisions back "
    "to the original order; the most probable token is always kept.",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_top_p_filter_matches_reference(student, fresh_seed, dtype):
    rng = random.Random(fresh_seed)
    for i in range(3):
        logits = random_logits(fresh_seed + i, dtype)
        p = rng.choice([rng.uniform(0.05, 0.99), 1.0])
        got = student.call("top_p_filter", logits, p)
        if p < 1.0:
            expected = generation.top_p_filter(logits, p)
        else:
            # Every token is in the nucleus; a cumulative sum that rounds to 1 before the
            # last token may drop tokens of negligible probability, and either is right.
            negligible = logits.softmax(-1) < 1e-4
            dropped = (
                got.isinf()
                if isinstance(got, torch.Tensor) and got.shape == logits.shape
                else False
            )
            expected = torch.where(negligible & dropped, -math.inf, logits)
        expect_tensor(got, expected, what=f"the nucleus for p={p:.4f}")


@pytest.mark.exercise("top_p_filter", points=0.5, hint="Raise ValueError unless 0 < p <= 1.")
@pytest.mark.parametrize("p", [0.0, -0.5, 1.5])
def test_top_p_filter_rejects_bad_p(student, p):
    with pytest.raises(ValueError):
        student.call("top_p_filter", torch.zeros(4), p)


# -------------------------------------------------------------------- beam_search
class Bigram(nn.Module):
    """A model whose next-token logits are the row of a table for the last token."""

    def __init__(self, log_probs: torch.Tensor) -> None:
        super().__init__()
        self.log_probs = log_probs

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.log_probs[idx]


def random_table(seed: int, vocab: int) -> torch.Tensor:
    """(vocab, vocab) float64 bigram log-probabilities, rows peaked enough to matter."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(vocab, vocab, generator=generator, dtype=torch.float64) * 2).log_softmax(-1)


def expect_hypotheses(got, expected, what):
    expect_type(got, list, tuple, what=what)
    if len(got) != len(expected):
        raise AssertionError(f"expected {len(expected)} hypotheses in {what}, got {len(got)}")
    for rank, (pair, hypothesis) in enumerate(zip(got, expected, strict=True)):
        expect_type(pair, list, tuple, what=f"hypothesis {rank} of {what}")
        tokens, score = pair
        if list(tokens) != hypothesis.tokens.tolist():
            raise AssertionError(
                f"expected hypothesis {rank} of {what} to be {hypothesis.tokens.tolist()}, "
                f"got {tokens}"
            )
        expect_float(
            score, hypothesis.score, rel=1e-9, abs=1e-12, what=f"the score of hypothesis {rank}"
        )


@pytest.mark.exercise(
    "beam_search",
    points=1,
    hint="Sum the log-probabilities; with length_penalty 0 the shorter finished "
    "sentence wins, with 1 the one with the best mean log-probability.",
)
def test_beam_search_hand_example(student):
    table = torch.tensor(
        [
            [0.01, 0.97, 0.01, 0.01],
            [0.01, 0.01, 0.49, 0.49],
            [0.01, 0.01, 0.01, 0.97],
            [0.25, 0.25, 0.25, 0.25],
        ],
        dtype=torch.float64,
    ).log()
    short = (math.log(0.97) + math.log(0.49)) / 2**0
    long = math.log(0.97) + math.log(0.49) + math.log(0.97)
    got = student.call("beam_search", table, 0, 2, 5, 3, 0.0)
    expect_hypotheses(got, [_h([0, 1, 3], short), _h([0, 1, 2, 3], long)], "beam search, α=0")
    got = student.call("beam_search", table, 0, 2, 5, 3, 1.0)
    expected = [_h([0, 1, 2, 3], long / 3), _h([0, 1, 3], short / 2)]
    expect_hypotheses(got, expected, "beam search, α=1")


@pytest.mark.exercise(
    "beam_search",
    points=0.5,
    hint="An extension ending with eos_id is finished only if it ranks among the first "
    "beam_width of the step's candidates; otherwise it is dropped.",
)
def test_beam_search_drops_low_ranked_eos(student):
    # width 1: at step 1, [0, 2] (eos, log 0.40) ranks second and is dropped, although
    # its log-probability beats that of the final answer [0, 1, 0] (log 0.55 + log 0.5)
    table = torch.tensor(
        [[0.05, 0.55, 0.40], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]], dtype=torch.float64
    ).log()
    expected = generation.beam_search(Bigram(table), torch.tensor([[0]]), 1, 2, 2, 0.0)
    assert expected[0].tokens.tolist() == [0, 1, 0]
    got = student.call("beam_search", table, 0, 1, 2, 2, 0.0)
    expect_hypotheses(got, expected, "beam search of width 1 over 2 steps")


class Spy(Bigram):
    """A :class:`Bigram` that records the hypotheses it is asked to extend."""

    def __init__(self, log_probs: torch.Tensor) -> None:
        super().__init__(log_probs)
        self.extended: list[list[list[int]]] = []

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        self.extended.append(idx.tolist())
        return super().forward(idx)


def tie_free(spy: Spy, width: int) -> bool:
    """Whether the search ``spy`` saw ranked no two extensions the same by construction.

    Sequences with the same transitions in another order (1 3 1 3 3 1 and 1 3 3 1 3 1)
    have the same summed log-probability, to the last bit or two, so which one is kept,
    or ranked first, is not defined. At each step, the 2 * width + 2 best extensions
    (the candidates, and one more each side of the cut) must have different transitions.
    """
    table = spy.log_probs.tolist()
    for rows in spy.extended:
        extensions = [(row + [t], lp) for row in rows for t, lp in enumerate(table[row[-1]])]
        totals = [
            (sum(table[a][b] for a, b in zip(seq, seq[1:-1], strict=False)) + lp, seq)
            for seq, lp in extensions
        ]
        best = sorted(totals, key=lambda pair: -pair[0])[: 2 * width + 2]
        moves = [tuple(sorted(Counter(zip(seq, seq[1:], strict=False)).items())) for _, seq in best]
        if len(set(moves)) < len(moves):
            return False
    return True


def untied_search(rng: random.Random, seed: int, with_eos: bool):
    """(table, start, width, steps, eos, alpha, hypotheses) of the first random draw
    whose beam search does not depend on how ties are broken (see :func:`tie_free`;
    about one draw in ten is replaced by the next)."""
    draw = 0
    while True:
        vocab = rng.randint(3, 12)
        table = random_table(seed + 1000 * draw, vocab)
        start, width, steps = rng.randrange(vocab), rng.randint(1, 4), rng.randint(1, 7)
        eos = rng.randrange(vocab) if with_eos else None
        alpha = rng.choice([0.0, 0.5, 1.0, 2.0])
        spy = Spy(table)
        expected = generation.beam_search(
            spy, torch.tensor([[start]]), width, steps, eos, alpha, use_cache=False
        )
        if tie_free(spy, width):
            return table, start, width, steps, eos, alpha, expected
        draw += 1


def _h(tokens: list[int], score: float) -> generation.Hypothesis:
    return generation.Hypothesis(torch.tensor(tokens), score, score, True)


@pytest.mark.exercise(
    "beam_search",
    points=1.5,
    hint="Take the 2 * beam_width best extensions; an eos among the first beam_width is "
    "finished; the first beam_width others stay alive; score = sum / n ** length_penalty.",
)
@pytest.mark.parametrize("with_eos", [False, True])
def test_beam_search_matches_reference(student, fresh_seed, with_eos):
    rng = random.Random(fresh_seed)
    for i in range(3):
        draw = untied_search(rng, fresh_seed + i, with_eos)
        table, start, width, steps, eos, alpha, expected = draw
        got = student.call("beam_search", table, start, width, steps, eos, alpha)
        vocab = table.shape[0]
        what = f"beam search (vocab {vocab}, width {width}, {steps} steps, eos {eos}, α {alpha})"
        expect_hypotheses(got, expected, what)


# ------------------------------------------------------------ speculative_verify
def random_round(seed: int, dtype: torch.dtype):
    """p (gamma + 1, vocab), q (gamma, vocab), proposals (gamma,), uniforms (gamma,)."""
    rng = random.Random(seed)
    gamma, vocab = rng.randint(1, 5), rng.randint(2, 10)
    generator = torch.Generator().manual_seed(seed)
    p = torch.rand(gamma + 1, vocab, generator=generator, dtype=dtype).pow(3)
    q = torch.rand(gamma, vocab, generator=generator, dtype=dtype).pow(3)
    p, q = p / p.sum(-1, keepdim=True), q / q.sum(-1, keepdim=True)
    proposals = torch.multinomial(q, 1, generator=generator)[:, 0]
    uniforms = torch.rand(gamma, generator=generator, dtype=dtype)
    return p, q, proposals, uniforms


def reference_verify(p, q, proposals, uniforms):
    """The decision of llmcourse.generation.speculative.verify, with the given uniforms."""
    for i, x in enumerate(proposals.tolist()):
        if not uniforms[i] < p[i, x] / q[i, x]:
            return i, generation.residual_distribution(p[i], q[i])
    return len(proposals), p[len(proposals)]


@pytest.mark.exercise(
    "speculative_verify",
    points=0.5,
    hint="Accept proposal i while uniforms[i] < p[i, x] / q[i, x]; at the first rejection "
    "return the normalised max(0, p[i] - q[i]).",
)
def test_speculative_verify_hand_example(student):
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]], dtype=torch.float64)
    q = torch.tensor([[0.4, 0.4, 0.2], [0.6, 0.2, 0.2]], dtype=torch.float64)
    proposals = torch.tensor([1, 0])
    cases = [
        ([0.9, 0.5], 0, [1.0, 0.0, 0.0]),  # 0.9 >= 0.3 / 0.4: residual (0.1, 0, 0) / 0.1
        ([0.5, 0.5], 1, [0.0, 0.0, 1.0]),  # 0.5 < 0.75, 0.5 >= 1/6: residual (0, 0, 0.6) / 0.6
        ([0.5, 0.1], 2, [0.2, 0.2, 0.6]),  # both accepted: the bonus distribution p[2]
    ]
    for uniforms, n, probs in cases:
        got = student.call("speculative_verify", p, q, proposals, torch.tensor(uniforms).double())
        expect_type(got, list, tuple, what="the result")
        expect_type(got[0], int, what="n_accepted")
        if got[0] != n:
            raise AssertionError(f"expected n_accepted {n} for uniforms {uniforms}, got {got[0]}")
        expect_tensor(got[1], torch.tensor(probs, dtype=torch.float64), what="next_probs")


@pytest.mark.exercise(
    "speculative_verify",
    points=1.5,
    hint="Return (n_accepted, next_probs) with next_probs of shape (vocab,) and the dtype of "
    "p; when every proposal is accepted, next_probs is p[gamma].",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_speculative_verify_matches_reference(student, fresh_seed, dtype):
    for i in range(4):
        p, q, proposals, uniforms = random_round(fresh_seed + i, dtype)
        n, probs = reference_verify(p, q, proposals, uniforms)
        got = student.call("speculative_verify", p, q, proposals, uniforms)
        expect_type(got, list, tuple, what="the result")
        expect_type(got[0], int, what="n_accepted")
        if got[0] != n:
            raise AssertionError(f"expected n_accepted {n} (gamma {len(proposals)}), got {got[0]}")
        expect_tensor(got[1], probs, **TOLERANCE[dtype], what="next_probs")
