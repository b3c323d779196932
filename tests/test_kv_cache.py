"""KV-cache arithmetic against numbers worked out by hand for published models."""

from __future__ import annotations

import pytest

from llmcourse.modules import (
    GPT2_SMALL,
    GPT2_XL,
    LLAMA2_7B,
    LLAMA2_13B,
    LLAMA2_70B,
    MISTRAL_7B,
    PUBLISHED_MODELS,
    ModelShape,
    hybrid_cache_bytes,
    kv_cache_bytes,
)

KIB, MIB, GIB = 2**10, 2**20, 2**30


def test_formula_on_a_tiny_model():
    # 2 (k and v) * 3 layers * 2 heads * 4 dims * 5 tokens * 6 sequences * 4 bytes
    assert kv_cache_bytes(3, 2, 4, 5, batch_size=6, bytes_per_value=4) == 2 * 3 * 2 * 4 * 5 * 6 * 4


def test_published_widths():
    # d_model = n_heads * head_dim, as published
    widths = {GPT2_SMALL: 768, GPT2_XL: 1600, LLAMA2_7B: 4096, LLAMA2_13B: 5120, LLAMA2_70B: 8192}
    for model, width in widths.items():
        assert model.d_model == width
    assert MISTRAL_7B.d_model == 4096 and MISTRAL_7B.n_kv_heads == 8


def test_gpt2_small_per_token():
    # 12 layers * 12 heads * 64 = 9,216 numbers for k, as many for v: 36 KiB in fp16
    assert GPT2_SMALL.bytes_per_token() == 36 * KIB
    assert GPT2_SMALL.bytes_per_token(bytes_per_value=4) == 72 * KIB
    assert GPT2_SMALL.cache_bytes(1024) == 36 * MIB


def test_llama2_7b():
    assert LLAMA2_7B.bytes_per_token() == MIB // 2  # 2 * 32 * 32 * 128 * 2 bytes
    assert LLAMA2_7B.cache_bytes(4096) == 2 * GIB
    assert LLAMA2_7B.cache_bytes(4096, batch_size=16) == 32 * GIB


def test_grouped_query_attention_shrinks_the_cache_by_the_group_size():
    # Llama 2 70B: 80 layers, 8 kv heads of 128 (64 query heads): 2 * 80 * 8 * 128 * 2 bytes
    assert LLAMA2_70B.bytes_per_token() == 320 * KIB
    as_mha = kv_cache_bytes(80, 64, 128, 4096)
    assert as_mha == 8 * LLAMA2_70B.cache_bytes(4096) == 10 * GIB


def test_a_sliding_window_caps_the_cache():
    assert MISTRAL_7B.bytes_per_token() == 128 * KIB  # 2 * 32 * 8 * 128 * 2
    assert MISTRAL_7B.cache_bytes(4096) == 512 * MIB
    assert MISTRAL_7B.cache_bytes(32768) == 512 * MIB
    assert kv_cache_bytes(1, 1, 1, 10, window=3) == kv_cache_bytes(1, 1, 1, 3)


def test_cache_grows_linearly():
    for model in PUBLISHED_MODELS:
        assert model.cache_bytes(0) == 0
        if model.window is None:
            assert model.cache_bytes(3000) == 3000 * model.bytes_per_token()


def test_hybrid_cache_is_window_plus_state_and_independent_of_length():
    # Llama 2 7B shape, window 512: local 512 tokens + (128 * 128 + 128) per head and layer
    local = LLAMA2_7B.cache_bytes(512)
    state = 32 * 32 * (128 * 128 + 128) * 2
    assert hybrid_cache_bytes(32, 32, 128, 512) == local + state
    assert hybrid_cache_bytes(1, 1, 4, 2, batch_size=3, bytes_per_value=1) == 3 * 36


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: kv_cache_bytes(0, 1, 1, 1), "n_layers must be an integer >= 1, got 0"),
        (lambda: kv_cache_bytes(1, 1, 1, -1), "seq_len must be an integer >= 0, got -1"),
        (lambda: kv_cache_bytes(1, 1, 1, 1, bytes_per_value=0.5), "bytes_per_value"),
        (lambda: kv_cache_bytes(1, 1, 1, 1, window=0), "window must be an integer >= 1"),
        (lambda: hybrid_cache_bytes(1, 1, 1, 0), "window must be an integer >= 1, got 0"),
        (lambda: ModelShape("x", 2, 12, 5, 64, 1024), r"n_heads \(12\) must be a multiple"),
        (lambda: ModelShape("x", 2, 12, 12, 64, 0), "context must be an integer >= 1"),
    ],
)
def test_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()
