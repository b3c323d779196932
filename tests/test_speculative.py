"""Unit tests of llmcourse.generation.speculative: speculative sampling and its greedy variant.

Exactness is tested two ways. Greedy: the output must be the target's greedy decoding,
token for token, for random GPTs whose draft differs from the target. Sampling: with a
bigram target (whose distribution over short continuations is known exactly) and a
different bigram draft, the frequencies of the generated tokens must pass a chi-square
test against the target's distribution (and fail it against the draft's), and the
proposals must be accepted at the rate ``sum_x min(p(x), q(x))``. The random draws are
seeded, so these tests are deterministic.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from tiny_models import Bigram, chi_square_p_value, random_gpt
from torch import Tensor

from llmcourse.generation import (
    acceptance_probability,
    greedy,
    process_logits,
    residual_distribution,
    speculative_greedy,
    speculative_sample,
    verify,
)
from llmcourse.models import GPT
from llmcourse.modules import POSITIONS

pytestmark = pytest.mark.usefixtures("one_thread")


def gpt(seed: int, scale: float = 8.0, **changes) -> GPT:
    return random_gpt(seed, scale, **(dict(vocab_size=11, block_size=40) | changes))


# ------------------------------------------------------------------ the pieces


def test_acceptance_probability_is_the_overlap():
    p = torch.tensor([0.5, 0.5, 0.0])
    q = torch.tensor([0.25, 0.25, 0.5])
    assert acceptance_probability(p, q).item() == pytest.approx(0.5)
    assert acceptance_probability(p, p).item() == pytest.approx(1.0)
    assert acceptance_probability(p, torch.tensor([0.0, 0.0, 1.0])).item() == 0.0
    g = torch.Generator().manual_seed(0)
    p, q = torch.rand(5, 8, generator=g).softmax(-1), torch.rand(5, 8, generator=g).softmax(-1)
    total_variation = 0.5 * (p - q).abs().sum(-1)
    torch.testing.assert_close(acceptance_probability(p, q), 1 - total_variation)


def test_residual_distribution():
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.5, 0.3])
    torch.testing.assert_close(residual_distribution(p, q), torch.tensor([1.0, 0.0, 0.0]))
    p = torch.tensor([0.4, 0.4, 0.2])
    q = torch.tensor([0.1, 0.3, 0.6])
    torch.testing.assert_close(residual_distribution(p, q), torch.tensor([0.75, 0.25, 0.0]))
    assert torch.equal(residual_distribution(p, p), p)  # nothing is ever rejected then


def test_verify_accepts_everything_when_the_draft_is_the_target():
    p = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    tokens, n = verify(p, p[:2], torch.tensor([1, 2]), torch.Generator().manual_seed(0))
    assert n == 2 and tokens.tolist() == [1, 2, 2]  # the bonus token is certain here


def test_verify_rejects_a_token_the_target_never_emits():
    p = torch.tensor([[0.0, 0.3, 0.7], [1.0, 0.0, 0.0]])
    q = torch.tensor([[1.0, 0.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        tokens, n = verify(p, q, torch.tensor([0]), g)
        assert n == 0 and tokens.tolist()[0] in (1, 2)  # resampled from p itself


def test_verify_emits_exactly_the_target_distribution():
    # p(x) = min(p, q)(x) + (1 - alpha) residual(x): the first token follows p exactly.
    p = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.25] * 4, [0.7, 0.1, 0.1, 0.1]])
    q = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7]])
    g = torch.Generator().manual_seed(1)
    first, accepted = torch.zeros(4), 0
    for _ in range(6000):
        proposals = torch.multinomial(q, 1, generator=g).flatten()
        tokens, n = verify(p, q, proposals, g)
        first[tokens[0]] += 1
        accepted += n > 0
    assert chi_square_p_value(first, p[0]) > 1e-3
    assert chi_square_p_value(first, q[0]) < 1e-9
    alpha = acceptance_probability(p[0], q[0]).item()  # 0.1 + 0.2 + 0.2 + 0.1 = 0.6
    assert alpha == pytest.approx(0.6)
    assert abs(accepted / 6000 - alpha) < 4 * math.sqrt(alpha * (1 - alpha) / 6000)


def test_verify_checks_shapes():
    p, q = torch.full((3, 4), 0.25), torch.full((2, 4), 0.25)
    with pytest.raises(ValueError, match=r"expected p \(gamma \+ 1, vocab\)"):
        verify(p, q, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="proposals must be a"):
        verify(p, q, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="negative"):
        verify(-p, q, torch.tensor([0, 1]))


# ------------------------------------------------------------------ greedy


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_speculative_greedy_is_target_greedy(position, gamma):
    for seed in (gamma, gamma + 1):
        target = gpt(seed, position=position, n_layers=3, d_model=24)
        draft = gpt(100 + seed, position=position, n_layers=1)
        idx = torch.tensor([[seed, 3, 5]])
        expected = greedy(target, idx, 30)
        result = speculative_greedy(target, draft, idx, 30, gamma)
        assert torch.equal(result.tokens, expected)
        assert not torch.equal(greedy(draft, idx, 30), expected)  # the draft differs
        generated = result.accepted + result.target_calls  # each round adds one of its own
        assert generated == 30
        assert sum(result.accepted_per_round) == result.accepted <= result.proposed
        assert result.draft_calls == result.proposed


def test_a_draft_that_agrees_needs_fewer_target_calls():
    target = gpt(0)
    result = speculative_greedy(target, target, torch.tensor([[1, 2]]), 20, gamma=4)
    assert torch.equal(result.tokens, greedy(target, torch.tensor([[1, 2]]), 20))
    assert result.acceptance_rate == 1.0
    assert result.target_calls == 4  # 5 + 5 + 5 + 5 tokens
    assert result.accepted_per_round == [4, 4, 4, 4]


def test_speculative_greedy_accounting_with_a_bad_draft():
    # The draft always proposes token 0, which the target never picks first.
    target = Bigram([[0.1, 0.9, 0.0], [0.2, 0.0, 0.8], [0.1, 0.8, 0.1]])
    draft = Bigram([[0.9, 0.05, 0.05]] * 3)
    result = speculative_greedy(target, draft, torch.tensor([[0]]), 6, gamma=2)
    assert result.tokens.tolist() == [[0, 1, 2, 1, 2, 1, 2]]
    assert result.accepted == 0 and result.target_calls == 6
    assert result.proposed == 2 + 2 + 2 + 2 + 1 + 0  # a round proposes at most remaining - 1


# ------------------------------------------------------------------ sampling

TARGET = [[0.5, 0.2, 0.2, 0.1], [0.1, 0.6, 0.2, 0.1], [0.3, 0.1, 0.3, 0.3], [0.1, 0.1, 0.1, 0.7]]
DRAFT = [[0.25, 0.25, 0.25, 0.25], [0.4, 0.3, 0.2, 0.1], [0.1, 0.1, 0.7, 0.1], [0.4, 0.4, 0.1, 0.1]]
RUNS = 5000


def three_token_probs(table: Tensor, first: int) -> Tensor:
    """``P(x1, x2, x3 | first)`` of a bigram table, ``(vocab, vocab, vocab)``."""
    step = table.softmax(-1)
    return step[first][:, None, None] * step[:, :, None] * step[None]


@pytest.fixture(scope="module")
def runs():
    """RUNS speculative samples of 3 tokens after the prompt [0], gamma = 2."""
    target, draft = Bigram(TARGET), Bigram(DRAFT)
    g = torch.Generator().manual_seed(2)
    return [
        speculative_sample(target, draft, torch.tensor([[0]]), 3, gamma=2, generator=g)
        for _ in range(RUNS)
    ]


def test_sampled_tokens_follow_the_target_distribution(runs):
    counts = torch.zeros(4, 4, 4)
    for result in runs:
        counts[tuple(result.tokens[0, 1:].tolist())] += 1
    assert chi_square_p_value(counts, three_token_probs(Bigram(TARGET).logits, 0)) > 1e-3
    assert chi_square_p_value(counts, three_token_probs(Bigram(DRAFT).logits, 0)) < 1e-9


def test_the_acceptance_rate_is_the_overlap(runs):
    # The first proposal of the first round is drawn from q(. | 0) and judged by p(. | 0).
    alpha = acceptance_probability(torch.tensor(TARGET[0]), torch.tensor(DRAFT[0])).item()
    assert alpha == pytest.approx(0.25 + 0.2 + 0.2 + 0.1)
    first_accepted = sum(result.accepted_per_round[0] > 0 for result in runs) / RUNS
    assert abs(first_accepted - alpha) < 4 * math.sqrt(alpha * (1 - alpha) / RUNS)
    # Every run proposes 2 tokens in its first round; rounds emit 1 to 3 tokens.
    assert all(r.accepted_per_round[0] <= 2 and r.tokens.shape == (1, 4) for r in runs)
    assert {r.target_calls for r in runs} == {1, 2, 3}


def test_sampling_with_top_k_and_temperature_follows_the_processed_target():
    target, draft = Bigram(TARGET), Bigram(DRAFT)
    g = torch.Generator().manual_seed(3)
    counts = torch.zeros(4, 4)
    for _ in range(3000):
        out = speculative_sample(
            target, draft, torch.tensor([[2]]), 2, gamma=3, temperature=0.7, top_k=2, generator=g
        )
        counts[tuple(out.tokens[0, 1:].tolist())] += 1
    step = process_logits(target.logits.detach(), 0.7, top_k=2).softmax(-1)
    pairs = step[2][:, None] * step  # P(x1, x2 | 2)
    assert (pairs == 0).any()
    assert chi_square_p_value(counts, pairs) > 1e-3


def test_identical_models_accept_every_proposal():
    model = Bigram(TARGET)
    g = torch.Generator().manual_seed(4)
    result = speculative_sample(model, model, torch.tensor([[1]]), 11, gamma=3, generator=g)
    assert result.acceptance_rate == 1.0 and result.accepted_per_round == [3, 3, 2]
    assert result.target_calls == 3 and result.tokens.shape == (1, 12)


def test_speculative_sampling_with_gpts_is_seeded():
    target, draft = gpt(0, scale=3.0), gpt(1, scale=3.0, n_layers=1)
    idx = torch.tensor([[4, 2]])
    runs = [
        speculative_sample(target, draft, idx, 25, 4, generator=torch.Generator().manual_seed(s))
        for s in (5, 5, 6)
    ]
    assert torch.equal(runs[0].tokens, runs[1].tokens)
    assert not torch.equal(runs[0].tokens, runs[2].tokens)
    assert runs[0].tokens.shape == (1, 27)
    assert 0 < runs[0].acceptance_rate < 1


# ------------------------------------------------------------------ validation


def test_arguments_are_validated():
    target, draft = gpt(0), gpt(1)
    idx = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match=r"decodes one sequence: idx must be \(1, time\)"):
        speculative_greedy(target, draft, torch.tensor([[1], [2]]), 3)
    with pytest.raises(ValueError, match="gamma must be an integer >= 1, got 0"):
        speculative_greedy(target, draft, idx, 3, gamma=0)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 0"):
        speculative_sample(target, draft, idx, -1)
    with pytest.raises(ValueError, match=r"must fit in the target's block_size \(40\)"):
        speculative_greedy(target, draft, idx, 39)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\], got 0"):
        speculative_sample(target, draft, idx, 3, top_p=0)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        speculative_sample(target, draft, idx, 3, temperature=-1.0)
    with pytest.raises(ValueError, match="share a vocabulary, got 10 and 11"):
        speculative_greedy(target, gpt(2, vocab_size=10), idx, 3)
    assert speculative_greedy(target, draft, idx, 0).tokens.tolist() == [[1, 2]]


def test_all_combinations_of_small_vocabularies_are_consistent():
    # Greedy speculative decoding equals greedy decoding for every prompt of a bigram pair.
    target, draft = Bigram(TARGET), Bigram(DRAFT)
    for first, gamma in itertools.product(range(4), (1, 2, 5)):
        idx = torch.tensor([[first]])
        assert torch.equal(
            speculative_greedy(target, draft, idx, 9, gamma).tokens, greedy(target, idx, 9)
        )
