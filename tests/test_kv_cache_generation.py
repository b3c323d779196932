"""Tests of the key-value cache for generation (GPT, decoding, speculative decoding).

The reference is always the model without a cache, which recomputes every position
from the whole window: cached logits must agree with ``model(idx)`` at every step, for
every position scheme and normalisation, and every decoding strategy must produce
exactly the same tokens with and without the cache. A model wrapper that records the
length of every input checks that the cache is really used (each step reads only the
new tokens) and that speculative decoding rolls it back to the accepted tokens.
(Chapter 7's memory arithmetic of KV caches is tested in ``test_kv_cache.py``.)
"""

from __future__ import annotations

import itertools

import pytest
import torch
from tiny_models import random_gpt
from torch import Tensor, nn

from llmcourse.generation import (
    CachedModel,
    beam_search,
    greedy,
    sample,
    speculative_greedy,
    speculative_sample,
)
from llmcourse.models import GPT
from llmcourse.modules import (
    NORMS,
    POSITIONS,
    KVCache,
    LayerKVCache,
    MultiHeadAttention,
    causal_mask,
)

VOCAB = 13


pytestmark = pytest.mark.usefixtures("one_thread")


def gpt(seed: int = 0, scale: float = 1.0, dtype=torch.float32, **changes) -> GPT:
    """A random GPT in eval mode (see tiny_models.random_gpt)."""
    config = dict(vocab_size=VOCAB, block_size=24) | changes
    return random_gpt(seed, scale, **config).to(dtype).eval()


def ids(batch: int, time: int, seed: int = 1) -> Tensor:
    return torch.randint(0, VOCAB, (batch, time), generator=torch.Generator().manual_seed(seed))


class Recorder(nn.Module):
    """Wraps a model and records the length of every input it reads."""

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model, self.config, self.lengths = model, model.config, []

    def new_cache(self) -> KVCache:
        return self.model.new_cache()

    def forward(self, idx: Tensor, cache: KVCache | None = None) -> Tensor:
        self.lengths.append(idx.shape[1])
        return self.model(idx, cache=cache)


# ------------------------------------------------------------------ the mask and the cache


def test_causal_mask_with_a_past():
    assert torch.equal(causal_mask(3, past=0), causal_mask(3))
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(3, past=2), expected)
    assert causal_mask(1, past=6).all() and causal_mask(1, past=6).shape == (1, 7)
    # the last rows of the full mask
    assert torch.equal(causal_mask(4, past=5), causal_mask(9)[5:])
    for bad in (-1, 1.5, True, None):
        with pytest.raises(ValueError, match="past must be an integer >= 0"):
            causal_mask(2, past=bad)


def test_layer_cache_appends_truncates_and_reorders():
    cache = LayerKVCache()
    assert cache.length == 0 and cache.keys is None
    k1, v1 = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    k2, v2 = torch.randn(2, 3, 1, 5), torch.randn(2, 3, 1, 5)
    keys, values = cache.append(k1, v1)
    assert torch.equal(keys, k1) and torch.equal(values, v1)
    keys, values = cache.append(k2, v2)
    assert cache.length == 5 and keys.shape == (2, 3, 5, 5)
    assert torch.equal(keys, torch.cat([k1, k2], dim=2))
    assert torch.equal(values, torch.cat([v1, v2], dim=2))
    cache.truncate(3)
    assert cache.length == 3 and torch.equal(cache.keys, k1[:, :, :3])
    assert torch.equal(cache.values, v1[:, :, :3])
    cache.reorder(torch.tensor([1, 1, 0]))
    assert cache.keys.shape == (3, 3, 3, 5)
    assert torch.equal(cache.keys, k1[[1, 1, 0], :, :3])
    assert torch.equal(cache.values, v1[[1, 1, 0], :, :3])
    cache.truncate(0)
    assert cache.length == 0


def test_layer_cache_validates():
    cache = LayerKVCache()
    with pytest.raises(
        ValueError, match=r"k and v must both be \(batch, n_kv_heads, new, d_head\)"
    ):
        cache.append(torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 6))
    with pytest.raises(ValueError, match="k and v must both be"):
        cache.append(torch.randn(3, 4, 5), torch.randn(3, 4, 5))
    cache.append(torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"new keys \(1, 3, 1, 5\) do not match"):
        cache.append(torch.randn(1, 3, 1, 5), torch.randn(1, 3, 1, 5))
    with pytest.raises(ValueError, match=r"length must be an integer in \[0, 4\], got 5"):
        cache.truncate(5)
    with pytest.raises(ValueError, match="length must be an integer"):
        cache.truncate(-1)
    with pytest.raises(ValueError, match=r"index must hold rows in \[0, 2\)"):
        cache.reorder(torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="index must be a 1-D long tensor"):
        cache.reorder(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="n_layers must be an integer >= 1, got 0"):
        KVCache(0)


def test_the_cache_writes_in_place_within_its_capacity_and_doubles_beyond_it():
    cache = LayerKVCache(capacity=6)
    k = torch.arange(2 * 1 * 4 * 3, dtype=torch.float32).view(2, 1, 4, 3)
    keys, _ = cache.append(k, -k)
    buffer = cache._keys.data_ptr()
    assert cache._keys.shape[2] == 6 and cache.nbytes == 2 * k.numel() * 4
    keys, values = cache.append(k[:, :, :2], -k[:, :, :2])  # fits: no new buffer
    assert cache._keys.data_ptr() == buffer and keys.shape == (2, 1, 6, 3)
    torch.testing.assert_close(keys, torch.cat([k, k[:, :, :2]], dim=2))
    torch.testing.assert_close(values, -keys)
    cache.truncate(3)  # a rollback only moves the length; the next append overwrites
    keys, _ = cache.append(k[:, :, 3:] + 100, k[:, :, 3:])
    torch.testing.assert_close(keys, torch.cat([k[:, :, :3], k[:, :, 3:] + 100], dim=2))
    keys, _ = cache.append(k, k)  # 8 > 6 positions: the buffers double, the contents stay
    assert cache._keys.shape[2] == 12 and keys.shape == (2, 1, 8, 3)
    torch.testing.assert_close(keys[:, :, 4:], k)


@pytest.mark.parametrize("n_kv_heads", [None, 1])
@pytest.mark.parametrize("rope", [False, True])
def test_multi_head_attention_with_a_cache_equals_the_causal_pass(rope, n_kv_heads):
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=8, n_heads=2, rope=rope, n_kv_heads=n_kv_heads).double()
    x = torch.randn(3, 7, 8, dtype=torch.float64)
    full = mha(x, mask=causal_mask(7))
    cache = LayerKVCache(capacity=7)
    steps = [mha(x[:, :3], mask=causal_mask(3), cache=cache)]
    for t in range(3, 7):
        steps.append(mha(x[:, t : t + 1], mask=causal_mask(1, past=t), cache=cache))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-12)
    assert cache.keys.shape == (3, n_kv_heads or 2, 7, 4)
    with pytest.raises(ValueError, match="a cache holds self-attention keys and values"):
        MultiHeadAttention(8, 2)(x, x, cache=LayerKVCache())


# ------------------------------------------------------------------ GPT with a cache


@pytest.mark.parametrize(
    "position, norm, pre_norm", list(itertools.product(POSITIONS, NORMS, [True, False]))
)
def test_cached_logits_equal_the_full_forward_at_every_step(position, norm, pre_norm):
    model = gpt(position=position, norm=norm, pre_norm=pre_norm, dtype=torch.float64)
    idx = ids(2, 24)
    full = model(idx)
    cache = model.new_cache()
    torch.testing.assert_close(model(idx[:, :5], cache=cache), full[:, :5], rtol=0, atol=1e-12)
    for t in range(5, 20):  # one token per step, as in generation
        logits = model(idx[:, t : t + 1], cache=cache)
        torch.testing.assert_close(logits, full[:, t : t + 1], rtol=0, atol=1e-12)
        assert cache.length == t + 1
    torch.testing.assert_close(model(idx[:, 20:], cache=cache), full[:, 20:], rtol=0, atol=1e-12)
    assert cache.length == 24 and cache.batch_size == 2
    assert cache.layers[1].keys.shape == (2, 2, 24, 8)


@pytest.mark.parametrize("position", POSITIONS)
def test_cached_logits_in_float32_and_hidden_states(position):
    model = gpt(position=position, bias=False, tie_weights=False, activation="relu")
    idx = ids(3, 16)
    full, cache = model(idx), model.new_cache()
    steps = [model(idx[:, :1], cache=cache)] + [
        model(idx[:, t : t + 1], cache=cache) for t in range(1, 16)
    ]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
    cache = model.new_cache()
    model.hidden_states(idx[:, :10], cache=cache)
    torch.testing.assert_close(
        model.hidden_states(idx[:, 10:], cache=cache),
        model.hidden_states(idx)[:, 10:],
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("position", POSITIONS)
def test_truncating_rolls_the_cache_back(position):
    model = gpt(position=position, dtype=torch.float64)
    idx, other = ids(1, 12, seed=1), ids(1, 12, seed=2)
    cache = model.new_cache()
    model(idx[:, :10], cache=cache)
    cache.truncate(6)  # forget positions 6..9 and continue with other tokens
    assert cache.length == 6
    sequence = torch.cat([idx[:, :6], other[:, 6:]], dim=1)
    torch.testing.assert_close(
        model(sequence[:, 6:], cache=cache), model(sequence)[:, 6:], rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("position", POSITIONS)
def test_reordering_follows_the_rows(position):
    model = gpt(position=position, dtype=torch.float64)
    idx = ids(3, 9)
    cache = model.new_cache()
    model(idx[:, :8], cache=cache)
    order = torch.tensor([2, 0, 0, 1])
    cache.reorder(order)
    assert cache.batch_size == 4
    torch.testing.assert_close(
        model(idx[order, 8:], cache=cache), model(idx[order])[:, 8:], rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_llama_style_cached_logits_equal_the_full_forward(n_kv_heads):
    model = gpt(
        n_heads=4, n_kv_heads=n_kv_heads, norm="rms", activation="swiglu", position="rope",
        bias=False, tie_weights=False, dtype=torch.float64,
    )  # fmt: skip
    idx = ids(2, 20)
    full, cache = model(idx), model.new_cache()
    steps = [model(idx[:, :6], cache=cache)] + [
        model(idx[:, t : t + 1], cache=cache) for t in range(6, 20)
    ]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-12)


def test_grouped_query_attention_shrinks_the_cache_by_n_heads_over_n_kv_heads():
    sizes = {}
    for n_kv_heads in (4, 2, 1):
        model = gpt(n_heads=4, n_kv_heads=n_kv_heads)
        cache = model.new_cache()
        model(ids(3, 10), cache=cache)
        # 2 (keys, values) x layers x kv heads x d_head x positions x batch x 4 bytes
        assert cache.nbytes == 2 * 2 * n_kv_heads * 4 * 10 * 3 * 4
        sizes[n_kv_heads] = cache.nbytes
    assert sizes[4] / sizes[2] == 2 and sizes[4] / sizes[1] == 4


def test_gpt_cache_errors():
    model = gpt(block_size=8)
    cache = model.new_cache()
    model(ids(2, 6), cache=cache)
    with pytest.raises(ValueError, match="idx has 3 positions; the model reads 1 to 2 after the 6"):
        model(ids(2, 3), cache=cache)
    with pytest.raises(ValueError, match="the cache holds 2 sequences but idx has 1"):
        model(ids(1, 1), cache=cache)
    with pytest.raises(ValueError, match="mask must be None with a cache"):
        model(ids(2, 1), mask=causal_mask(1), cache=cache)
    with pytest.raises(ValueError, match="cache must be a KVCache with 2 layers"):
        model(ids(2, 1), cache=KVCache(3))
    with pytest.raises(ValueError, match="cache must be a KVCache"):
        model(ids(2, 1), cache=[LayerKVCache(), LayerKVCache()])
    assert cache.length == 6  # a refused call leaves the cache as it was
    assert model(ids(2, 2), cache=cache).shape == (2, 2, VOCAB) and cache.length == 8


def test_sampling_reads_one_token_per_step_until_the_block_is_full():
    model = gpt(block_size=12)
    calls = []
    hook = model.embed.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[1]))
    sample(model, ids(1, 5), 10)
    hook.remove()
    # the prompt, then one token per step up to 12 positions, then the cropped window
    assert calls == [5] + [1] * 7 + [12] * 2


# ------------------------------------------------------------------ decoding


@pytest.mark.parametrize("position", POSITIONS)
def test_greedy_and_sample_are_the_same_with_and_without_the_cache(position):
    model = gpt(position=position, scale=4.0)
    prompt = ids(4, 3)
    for new_tokens in (12, 28):  # 28 goes past block_size
        assert torch.equal(
            greedy(model, prompt, new_tokens), greedy(model, prompt, new_tokens, use_cache=False)
        )
    for settings in (dict(), dict(temperature=0.7, top_k=5), dict(top_p=0.8, eos_id=2)):
        cached, plain = (
            sample(
                model,
                prompt,
                25,
                generator=torch.Generator().manual_seed(3),
                use_cache=flag,
                **settings,
            )
            for flag in (True, False)
        )
        assert torch.equal(cached, plain)


def test_greedy_feeds_only_the_new_token():
    recorder = Recorder(gpt())
    greedy(recorder, ids(2, 5), 8)
    assert recorder.lengths == [5] + [1] * 7
    recorder.lengths.clear()
    greedy(recorder, ids(2, 5), 8, use_cache=False)
    assert recorder.lengths == list(range(5, 13))


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("eos_id, length_penalty", [(None, 0.0), (3, 1.0)])
def test_beam_search_is_the_same_with_and_without_the_cache(position, eos_id, length_penalty):
    model = gpt(position=position, scale=3.0)
    prompt = ids(1, 3)
    cached, plain = (
        beam_search(model, prompt, 4, 15, eos_id, length_penalty, use_cache=flag)
        for flag in (True, False)
    )
    assert len(cached) == len(plain) == 4
    for a, b in zip(cached, plain, strict=True):
        assert torch.equal(a.tokens, b.tokens) and a.finished == b.finished
        assert a.log_prob == pytest.approx(b.log_prob, abs=1e-4)


def test_beam_search_reorders_the_cache_and_reads_one_token_per_hypothesis():
    recorder = Recorder(gpt(scale=3.0))
    beam_search(recorder, ids(1, 4), 3, 6)
    assert recorder.lengths == [4] + [1] * 5


def test_cached_model_refuses_a_sequence_that_does_not_continue_the_cache():
    runner = CachedModel(gpt())
    idx = ids(1, 8)
    runner.logits(idx[:, :6])
    changed = idx.clone()
    changed[0, 2] = (changed[0, 2] + 1) % VOCAB
    with pytest.raises(ValueError, match="idx must start with the 6 cached tokens"):
        runner.logits(changed)
    with pytest.raises(ValueError, match="add at least last=3 tokens; truncate"):
        runner.logits(idx, last=3)  # position 5 would have to be read again
    runner.truncate(2)  # the first two tokens still agree
    assert runner.length == 2
    torch.testing.assert_close(
        runner.logits(changed, last=6), runner.model(changed)[:, 2:], rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match=r"last must be an integer in \[1, 8\], got 9"):
        runner.logits(changed, last=9)
    with pytest.raises(ValueError, match="length must be an integer >= 0"):
        runner.truncate(-1)


def test_cached_model_without_a_cache():
    model = gpt()
    for runner in (CachedModel(model, use_cache=False), CachedModel(nn.Sequential(model))):
        assert runner.cache is None and runner.length == 0
        idx = ids(2, 6)
        torch.testing.assert_close(runner.logits(idx, last=2), model(idx)[:, -2:])
        runner.truncate(0)
        runner.reorder(torch.tensor([1]))  # nothing cached: nothing to do


# ------------------------------------------------------------------ speculative decoding


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("gamma", [1, 4])
def test_speculative_greedy_is_the_same_with_and_without_the_cache(position, gamma):
    target = gpt(seed=0, scale=4.0, position=position, block_size=40)
    # with the same seed, the one-layer draft shares the target's embeddings and first
    # block, and agrees with it now and then
    draft = gpt(seed=0, scale=4.0, position=position, n_layers=1, block_size=40)
    prompt = ids(1, 3)
    cached = speculative_greedy(target, draft, prompt, 30, gamma)
    plain = speculative_greedy(target, draft, prompt, 30, gamma, use_cache=False)
    assert torch.equal(cached.tokens, plain.tokens)
    assert torch.equal(cached.tokens, greedy(target, prompt, 30))
    assert cached.accepted_per_round == plain.accepted_per_round
    assert 0 < cached.accepted < cached.proposed  # some rejections: the rollback is exercised


@pytest.mark.parametrize("position", POSITIONS)
def test_speculative_sampling_is_the_same_with_and_without_the_cache(position):
    target = gpt(seed=0, scale=3.0, position=position, block_size=40)
    draft = gpt(seed=1, scale=3.0, position=position, block_size=40)
    prompt = ids(1, 2)
    for settings in (dict(), dict(temperature=0.8, top_k=4)):
        cached, plain = (
            speculative_sample(
                target,
                draft,
                prompt,
                30,
                3,
                generator=torch.Generator().manual_seed(7),
                use_cache=flag,
                **settings,
            )
            for flag in (True, False)
        )
        assert torch.equal(cached.tokens, plain.tokens)
        assert cached.accepted_per_round == plain.accepted_per_round
        assert 0 < cached.accepted < cached.proposed


def test_speculative_rolls_the_target_cache_back_to_the_accepted_tokens():
    target = Recorder(gpt(seed=0, scale=4.0, block_size=40))
    draft = gpt(seed=0, scale=4.0, n_layers=1, block_size=40)
    prompt = ids(1, 3)
    result = speculative_greedy(target, draft, prompt, 25, gamma=3)
    # round 1 reads the prompt and its g <= 3 proposals; every later round reads the last
    # token and its g proposals, i.e. what follows the accepted tokens, nothing twice:
    # (len(prompt) - 1) + sum over rounds of (g + 1) tokens in all
    assert len(target.lengths) == result.target_calls
    assert target.lengths[0] == 3 + 3
    assert all(2 <= n <= 4 for n in target.lengths[1:-1]) and 1 <= target.lengths[-1] <= 4
    assert sum(target.lengths) == 2 + result.proposed + result.target_calls
    assert 0 < result.accepted < result.proposed
