"""Unit tests of llmcourse.generation: logit transforms, greedy, sampling and beam search.

Two kinds of model: small random GPTs, and a bigram table (``Bigram``), whose next-token
distribution depends only on the last token and is known exactly, so that sampled
frequencies can be compared with exact probabilities and beam search with a search over
every sequence. Parity of the transforms with Hugging Face's warpers is in
``test_decoding_hf_parity.py``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from tiny_models import Bigram, chi_square_p_value, random_gpt
from torch import Tensor, nn

from llmcourse.generation import (
    apply_temperature,
    beam_search,
    greedy,
    process_logits,
    sample,
    sample_next,
    top_k_filter,
    top_p_filter,
)
from llmcourse.models import GPT
from llmcourse.modules import POSITIONS

INF = math.inf


pytestmark = pytest.mark.usefixtures("one_thread")


def gpt(seed: int = 0, **changes) -> GPT:
    return random_gpt(seed, scale=8.0, **(dict(vocab_size=13, block_size=16) | changes))


# ------------------------------------------------------------------ temperature


def test_temperature_divides_the_logits():
    logits = torch.tensor([0.0, math.log(2.0)])  # probabilities 1/3, 2/3
    torch.testing.assert_close(
        apply_temperature(logits, 1.0).softmax(-1), torch.tensor([1 / 3, 2 / 3])
    )
    # tau = 0.5 squares the odds: 1 : 4
    torch.testing.assert_close(apply_temperature(logits, 0.5).softmax(-1), torch.tensor([0.2, 0.8]))
    # tau = 2 takes their square root: 1 : sqrt(2)
    half = apply_temperature(logits, 2).softmax(-1)
    torch.testing.assert_close(half, torch.tensor([1.0, math.sqrt(2)]) / (1 + math.sqrt(2)))


def test_temperature_sharpens_and_flattens():
    logits = torch.randn(4, 20, generator=torch.Generator().manual_seed(0))
    top = [apply_temperature(logits, t).softmax(-1).max(-1).values for t in (0.25, 1.0, 4.0)]
    assert (top[0] > top[1]).all() and (top[1] > top[2]).all()
    assert apply_temperature(logits, 1e-3).softmax(-1).max(-1).values.min() > 0.999


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, math.inf, math.nan, "1", True, None])
def test_temperature_is_validated(bad):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        apply_temperature(torch.zeros(3), bad)


# ------------------------------------------------------------------ top-k


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([1.0, 3.0, 2.0, 5.0])
    assert top_k_filter(logits, 2).tolist() == [-INF, 3.0, -INF, 5.0]
    assert top_k_filter(logits, 1).tolist() == [-INF, -INF, -INF, 5.0]
    assert top_k_filter(logits, 4).tolist() == logits.tolist()
    assert top_k_filter(logits, 10).tolist() == logits.tolist()  # k > vocab keeps all
    assert top_k_filter(logits, 1, min_tokens_to_keep=3).tolist() == [-INF, 3.0, 2.0, 5.0]


def test_top_k_keeps_ties_with_the_kth_largest():
    logits = torch.tensor([[1.0, 2.0, 2.0, 0.0], [4.0, 4.0, 4.0, 4.0]])
    assert top_k_filter(logits, 1).tolist() == [[-INF, 2.0, 2.0, -INF], [4.0] * 4]
    assert top_k_filter(logits, 3).tolist() == [[1.0, 2.0, 2.0, -INF], [4.0] * 4]


def test_top_k_works_on_any_leading_shape():
    logits = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(1))
    out = top_k_filter(logits, 3)
    assert out.shape == logits.shape
    assert ((out > -INF).sum(-1) == 3).all()
    kept = out.sort(-1, descending=True).values[..., :3]
    assert torch.equal(kept, logits.sort(-1, descending=True).values[..., :3])


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True, None])
def test_top_k_is_validated(bad):
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        top_k_filter(torch.zeros(3), bad)


# ------------------------------------------------------------------ top-p


PROBS = torch.tensor([0.05, 0.5, 0.15, 0.3], dtype=torch.float64)


@pytest.mark.parametrize(
    "top_p, kept",
    [
        (1.0, [0, 1, 2, 3]),
        (0.96, [0, 1, 2, 3]),
        (0.9, [1, 2, 3]),  # 0.5 + 0.3 + 0.15 = 0.95 >= 0.9, but 0.5 + 0.3 = 0.8 is not
        (0.75, [1, 3]),  # 0.5 + 0.3 = 0.8 >= 0.75
        (0.4, [1]),
        (1e-9, [1]),
    ],
)
def test_top_p_keeps_the_smallest_nucleus(top_p, kept):
    out = top_p_filter(PROBS.log(), top_p)
    assert (out > -INF).nonzero().flatten().tolist() == kept
    assert torch.equal(out[kept], PROBS.log()[kept])  # kept logits are unchanged


def test_top_p_min_tokens_to_keep():
    out = top_p_filter(PROBS.log(), 0.1, min_tokens_to_keep=3)
    assert (out > -INF).nonzero().flatten().tolist() == [1, 2, 3]


def test_top_p_splits_ties_and_keeps_the_higher_ids():
    out = top_p_filter(torch.zeros(4), 0.5)  # uniform: two tokens make 0.5
    assert out.tolist() == [-INF, -INF, 0.0, 0.0]
    out = top_p_filter(torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0]), 0.3)
    assert (out > -INF).nonzero().flatten().tolist() == [2, 4]  # 2 x 0.27 >= 0.3 > 0.27


def test_top_p_is_the_smallest_set_reaching_p():
    g = torch.Generator().manual_seed(2)
    for _ in range(200):
        logits = 3 * torch.randn(3, 12, generator=g, dtype=torch.float64)
        top_p = torch.rand((), generator=g).item()
        out = top_p_filter(logits, top_p)
        for row, filtered in zip(logits, out, strict=True):
            mass = row.softmax(-1).sort(descending=True).values.cumsum(-1)
            if (mass - top_p).abs().min() < 1e-9:
                continue  # at the boundary, rounding decides
            smallest = int((mass < top_p).sum()) + 1
            assert int((filtered > -INF).sum()) == smallest
            assert (filtered[filtered > -INF].min() >= row[filtered == -INF]).all()


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, math.nan, "0.5", None])
def test_top_p_is_validated(bad):
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        top_p_filter(torch.zeros(3), bad)


def test_the_error_message_names_the_bad_value():
    with pytest.raises(ValueError, match=r"^top_p must be in \(0, 1\], got 1.5$"):
        top_p_filter(torch.zeros(3), 1.5)
    with pytest.raises(ValueError, match="min_tokens_to_keep must be an integer >= 1, got 0"):
        top_p_filter(torch.zeros(3), 0.5, min_tokens_to_keep=0)


@pytest.mark.parametrize("fn", [top_p_filter, top_k_filter])
@pytest.mark.parametrize("bad", [torch.zeros(3, dtype=torch.long), torch.zeros(()), [0.0, 1.0]])
def test_logits_are_validated(fn, bad):
    with pytest.raises(ValueError, match="logits must be a floating-point tensor"):
        fn(bad, 1)


# ------------------------------------------------------------------ process and sample


def test_process_logits_applies_temperature_then_top_k_then_top_p():
    logits = torch.randn(5, 30, generator=torch.Generator().manual_seed(3))
    expected = top_p_filter(top_k_filter(logits / 0.7, 10), 0.6)
    assert torch.equal(process_logits(logits, 0.7, top_k=10, top_p=0.6), expected)
    assert torch.equal(process_logits(logits), logits)
    # the order matters: the temperature reshapes the distribution that top-p cuts
    before, after = top_p_filter(logits / 0.7, 0.6), top_p_filter(logits, 0.6) / 0.7
    assert ((before > -INF).sum(-1) < (after > -INF).sum(-1)).all()


def test_sample_next_draws_from_the_processed_distribution():
    logits = torch.tensor([0.1, 0.2, 0.3, 0.4]).log()
    # tau = 0.5 squares the probabilities: (1, 4, 9, 16) / 30; the smallest, 1/30, is
    # all that top-p = 0.9 removes; the other three are renormalised to (4, 9, 16) / 29.
    probs = process_logits(logits, 0.5, top_p=0.9).softmax(-1)
    torch.testing.assert_close(probs, torch.tensor([0, 4, 9, 16]) / 29.0)
    g = torch.Generator().manual_seed(4)
    draws = sample_next(logits.expand(20000, 4), 0.5, top_p=0.9, generator=g)
    assert draws.shape == (20000,) and draws.dtype == torch.long
    counts = torch.bincount(draws, minlength=4)
    assert chi_square_p_value(counts, probs) > 1e-3
    assert chi_square_p_value(counts, logits.softmax(-1)) < 1e-9  # the unprocessed one is not


def test_sample_next_shapes_and_top_k_one_is_argmax():
    logits = torch.randn(2, 3, 9, generator=torch.Generator().manual_seed(5))
    assert sample_next(logits).shape == (2, 3)
    assert torch.equal(sample_next(logits, top_k=1), logits.argmax(-1))
    assert torch.equal(sample_next(logits, temperature=1e-4), logits.argmax(-1))


def test_sample_next_rejects_nan_and_empty_rows():
    with pytest.raises(ValueError, match="NaN"):
        sample_next(torch.tensor([[0.0, math.nan]]))
    with pytest.raises(ValueError, match="finite logit"):
        sample_next(torch.tensor([[0.0, 1.0], [-INF, -INF]]))


# ------------------------------------------------------------------ greedy and sample


def argmax_loop(model: GPT, idx: Tensor, n: int) -> Tensor:
    for _ in range(n):
        logits = model(idx[:, -model.config.block_size :])[:, -1]
        idx = torch.cat([idx, logits.argmax(-1, keepdim=True)], dim=1)
    return idx


@pytest.mark.parametrize("position", POSITIONS)
def test_greedy_is_the_argmax_loop(position):
    model = gpt(position=position).eval()
    idx = torch.tensor([[1, 2, 3], [4, 4, 4], [12, 0, 7]])
    with torch.no_grad():
        expected = argmax_loop(model, idx, 20)  # 23 > block_size: the context is cropped
    out = greedy(model, idx, 20)
    assert out.shape == (3, 23)
    assert torch.equal(out, expected)
    assert len(set(map(tuple, out[:, 3:].tolist()))) > 1  # the rows really differ


# A chain 0 -> 1 -> 2 -> 3 -> 3 (3 is the end-of-sequence token), 90% likely at each step
CHAIN = [[0.025, 0.9, 0.05, 0.025], [0.05, 0.025, 0.9, 0.025], [0.05, 0.025, 0.025, 0.9]]
CHAIN.append([0.05, 0.025, 0.025, 0.9])


def test_greedy_stops_rows_at_eos_and_pads_them():
    model = Bigram(CHAIN)
    out = greedy(model, torch.tensor([[0], [2]]), 10, eos_id=3)
    assert out.tolist() == [[0, 1, 2, 3], [2, 3, 3, 3]]  # stops once every row has ended
    assert greedy(model, torch.tensor([[0]]), 10).shape == (1, 11)  # no eos: all 10 tokens
    assert greedy(model, torch.tensor([[0]]), 2, eos_id=3).tolist() == [[0, 1, 2]]
    assert greedy(model, torch.tensor([[0]]), 0).tolist() == [[0]]


def test_sample_is_ancestral_sampling_written_out_for_the_same_seed():
    model = gpt(1).eval()
    idx = torch.tensor([[1, 2], [3, 4]])
    expected, generator = idx, torch.Generator().manual_seed(6)
    with torch.no_grad():
        for _ in range(18):  # past block_size (16): read the last 16 tokens
            probs = model(expected[:, -16:])[:, -1].softmax(-1)
            expected = torch.cat([expected, torch.multinomial(probs, 1, generator=generator)], 1)
    out = sample(model, idx, 18, generator=torch.Generator().manual_seed(6))
    assert torch.equal(out, expected)
    again = sample(model, idx, 18, generator=torch.Generator().manual_seed(6))
    other = sample(model, idx, 18, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_sample_with_top_k_one_is_greedy():
    model = gpt(2, position="rope")
    idx = torch.tensor([[5, 6, 7]])
    assert torch.equal(sample(model, idx, 10, top_k=1), greedy(model, idx, 10))


def test_sampled_pairs_follow_the_processed_bigram():
    model = Bigram([[0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.1, 0.3], [0.25] * 4, [0.7, 0.1, 0.1, 0.1]])
    settings = dict(temperature=0.8, top_k=3, top_p=0.9)
    n = 20000
    out = sample(model, torch.zeros(n, 1, dtype=torch.long), 2, **settings,
                 generator=torch.Generator().manual_seed(8))  # fmt: skip
    counts = torch.bincount(out[:, 1] * 4 + out[:, 2], minlength=16)
    step = process_logits(model.logits.detach(), **settings).softmax(-1)  # (4, 4)
    pairs = step[0][:, None] * step  # P(x1, x2) = P(x1 | 0) P(x2 | x1)
    assert chi_square_p_value(counts, pairs) > 1e-3
    plain = model.logits.detach().softmax(-1)
    assert (counts[(pairs == 0).flatten()] == 0).all()  # filtered pairs never appear
    assert not torch.equal(pairs > 0, plain[0][:, None] * plain > 0)


def test_eos_while_sampling_pads_finished_rows():
    model = Bigram(CHAIN)
    out = sample(model, torch.zeros(200, 1, dtype=torch.long), 12, eos_id=3,
                 generator=torch.Generator().manual_seed(9))  # fmt: skip
    for row in out.tolist():
        if 3 in row:
            first = row.index(3)
            assert set(row[first:]) == {3}


class Recorder(nn.Module):
    """Wraps a model and records, at every call, whether it trains and tracks gradients."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, idx: Tensor) -> Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.model(idx)


@pytest.mark.parametrize("decode", [greedy, sample, lambda m, i, n: beam_search(m, i, 2, n)])
def test_generation_runs_in_eval_mode_without_gradients(decode):
    model = Recorder(Bigram(CHAIN)).train()
    decode(model, torch.tensor([[0]]), 3)
    assert model.calls and set(model.calls) == {(False, False)}
    assert model.training and torch.is_grad_enabled()  # both restored


def test_dropout_is_off_while_generating():
    model = gpt(3, dropout=0.5).train()
    idx = torch.tensor([[1, 2, 3]])
    assert torch.equal(greedy(model, idx, 8), greedy(model, idx, 8))
    assert torch.equal(greedy(model, idx, 8), greedy(model.eval(), idx, 8))


def test_generation_arguments_are_validated():
    model = gpt()
    with pytest.raises(ValueError, match="idx must be a non-empty \\(batch, time\\) long tensor"):
        greedy(model, torch.tensor([1, 2]), 3)
    with pytest.raises(ValueError, match="idx must be"):
        greedy(model, torch.tensor([[1.0, 2.0]]), 3)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 0, got -1"):
        greedy(model, torch.tensor([[1]]), -1)
    with pytest.raises(ValueError, match=r"eos_id must be None or a token id in \[0, 13\)"):
        greedy(model, torch.tensor([[1]]), 3, eos_id=13)
    with pytest.raises(ValueError, match="top_k must be an integer >= 1, got 0"):
        sample(model, torch.tensor([[1]]), 3, top_k=0)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got 0"):
        sample(model, torch.tensor([[1]]), 3, temperature=0)
    with pytest.raises(ValueError, match=r"must return logits \(batch, time, vocab\) = \(1, 1"):
        greedy(Recorder(lambda idx: torch.zeros(idx.shape[0], 5)), torch.tensor([[1]]), 3)


# ------------------------------------------------------------------ beam search


def exhaustive(model, prompt: list[int], n: int, eos_id=None, length_penalty=0.0):
    """Every complete continuation (ending at the first eos, or n tokens long), scored
    with one forward pass per length; best first: (tokens, log_prob, score)."""
    vocab = model(torch.tensor([prompt]))[0, -1].numel()
    results = []
    for length in range(1, n + 1):
        seqs = [
            list(seq)
            for seq in itertools.product(range(vocab), repeat=length)
            if (eos_id is None or eos_id not in seq[:-1]) and (length == n or seq[-1] == eos_id)
        ]
        if not seqs:
            continue
        tokens = torch.tensor([prompt + seq for seq in seqs])  # (count, prompt + length)
        with torch.no_grad():
            log_probs = model(tokens[:, :-1]).double().log_softmax(-1)[:, len(prompt) - 1 :]
        totals = log_probs.gather(-1, tokens[:, len(prompt) :, None]).sum((1, 2))
        for row, total in zip(tokens.tolist(), totals.tolist(), strict=True):
            results.append((row, total, total / length**length_penalty))
    return sorted(results, key=lambda r: r[2], reverse=True)


@pytest.mark.parametrize("eos_id, length_penalty", [(None, 0.0), (2, 0.0), (2, 1.0), (0, -0.5)])
def test_a_wide_beam_finds_the_exact_best_sequences(eos_id, length_penalty):
    model = gpt(4, vocab_size=4).double().eval()  # float64: ties of rounding cannot reorder
    prompt, n = [1, 3], 4
    found = beam_search(model, torch.tensor([prompt]), 4**n, n, eos_id, length_penalty)
    best = exhaustive(model, prompt, n, eos_id, length_penalty)
    assert len(found) == len(best)  # every complete sequence, ranked
    for hyp, (tokens, total, score) in zip(found[:10], best[:10], strict=True):
        assert hyp.tokens.tolist() == tokens
        assert hyp.log_prob == pytest.approx(total, abs=1e-10)
        assert hyp.score == pytest.approx(score, abs=1e-10)
        assert hyp.finished == (tokens[-1] == eos_id)


def test_a_narrow_beam_ranks_its_hypotheses_and_beats_greedy_here():
    # Start at token 0: "1" is likelier (0.6) than "2" (0.4), but after "1" everything is
    # uniform, after "2" token 3 is almost certain. Greedy: 0.6 * 0.25; beam 2: 0.4 * 0.97.
    model = Bigram(
        [[0.0001, 0.6, 0.3998, 0.0001], [0.25] * 4, [0.01, 0.01, 0.01, 0.97], [0.25] * 4]
    )
    assert greedy(model, torch.tensor([[0]]), 2).tolist() == [[0, 1, 0]]
    found = beam_search(model, torch.tensor([[0]]), 2, 2)
    assert found[0].tokens.tolist() == [0, 2, 3]
    assert found[0].log_prob == pytest.approx(math.log(0.3998 * 0.97))
    assert found[1].log_prob == pytest.approx(math.log(0.6 * 0.25))
    assert not found[0].finished


@pytest.mark.parametrize("eos_id", [None, 3])
def test_beam_width_one_is_greedy(eos_id):
    for seed in range(3):
        model = gpt(seed, vocab_size=6)
        idx = torch.tensor([[seed, 1]])
        (only,) = beam_search(model, idx, 1, 12, eos_id)
        assert torch.equal(only.tokens, greedy(model, idx, 12, eos_id)[0])
    chain = Bigram(CHAIN)
    (only,) = beam_search(chain, torch.tensor([[0]]), 1, 10, eos_id=3)
    assert only.tokens.tolist() == [0, 1, 2, 3] and only.finished
    assert only.log_prob == pytest.approx(3 * math.log(0.9))


def test_length_penalty_trades_short_for_long():
    # From 0: eos (1) at 0.5, or 2 (0.4) -> 3 (0.8) -> eos (0.8). Sum: the short one wins
    # (log 0.5 = -0.69 > -1.36); mean per token: the long one (-0.45 > -0.69).
    model = Bigram([
        [0.05, 0.5, 0.4, 0.05], [0.25] * 4, [0.05, 0.1, 0.05, 0.8], [0.05, 0.8, 0.1, 0.05],
    ])  # fmt: skip
    idx = torch.tensor([[0]])
    short = beam_search(model, idx, 3, 4, eos_id=1)[0]
    assert short.tokens.tolist() == [0, 1] and short.finished
    assert short.score == pytest.approx(math.log(0.5))
    long = beam_search(model, idx, 3, 4, eos_id=1, length_penalty=1.0)[0]
    assert long.tokens.tolist() == [0, 2, 3, 1] and long.finished
    assert long.score == pytest.approx(math.log(0.4 * 0.8 * 0.8) / 3)
    for found in (short, long):
        best = exhaustive(model, [0], 4, 1, 1.0 if found is long else 0.0)[0]
        assert found.tokens.tolist() == best[0]


def test_beam_search_keeps_unfinished_hypotheses_at_the_length_limit():
    found = beam_search(Bigram(CHAIN), torch.tensor([[0]]), 3, 2, eos_id=3)
    assert [h.tokens.tolist() for h in found][0] == [0, 1, 2]
    assert not found[0].finished
    assert [h.score for h in found] == sorted((h.score for h in found), reverse=True)


def test_beam_search_arguments_are_validated():
    model = gpt()
    with pytest.raises(ValueError, match=r"one prompt at a time: idx must be \(1, time\)"):
        beam_search(model, torch.tensor([[1], [2]]), 2, 3)
    with pytest.raises(ValueError, match="beam_width must be an integer >= 1, got 0"):
        beam_search(model, torch.tensor([[1]]), 0, 3)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1, got 0"):
        beam_search(model, torch.tensor([[1]]), 2, 0)
    with pytest.raises(ValueError, match="length_penalty must be a finite number"):
        beam_search(model, torch.tensor([[1]]), 2, 3, length_penalty=math.nan)
