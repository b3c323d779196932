"""Prefix tuning and prompt tuning (llmcourse.peft.prefix, llmcourse.peft.prompt)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.models import FineTuner, SequenceClassificationHead
from llmcourse.peft import PrefixTuning, PromptTuning, count_parameters, state_checksum

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("position", ["rope", "learned"])
def test_a_prefix_of_real_tokens_is_reading_those_tokens_first(position):
    # Started from the keys and values of real tokens, the prefix makes the model read the
    # input exactly as if those tokens came before it.
    model = random_gpt(vocab_size=30, block_size=12, position=position, scale=3.0)
    g = torch.Generator().manual_seed(0)
    prefix_ids, idx = (
        torch.randint(0, 30, (4,), generator=g),
        torch.randint(0, 30, (3, 6), generator=g),
    )
    tuned = PrefixTuning(model, 4, init_ids=prefix_ids)
    assert tuned.keys.shape == tuned.values.shape == (2, 2, 4, 8)  # layers, kv heads, P, d_head
    with torch.no_grad():
        expected = model(torch.cat([prefix_ids.expand(3, -1), idx], dim=1))[:, 4:]
    torch.testing.assert_close(tuned(idx), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("position", ["rope", "learned"])
def test_a_prompt_of_real_embeddings_is_reading_those_tokens_first(position):
    model = random_gpt(vocab_size=30, block_size=12, position=position, scale=3.0)
    g = torch.Generator().manual_seed(1)
    prompt_ids, idx = (
        torch.randint(0, 30, (5,), generator=g),
        torch.randint(0, 30, (2, 7), generator=g),
    )
    tuned = PromptTuning(model, 5, init_ids=prompt_ids)
    assert tuned.prompt.shape == (5, 16)
    with torch.no_grad():
        expected = model(torch.cat([prompt_ids.expand(2, -1), idx], dim=1))[:, 5:]
    torch.testing.assert_close(tuned(idx), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["prefix", "prompt"])
def test_only_the_new_vectors_train_and_the_model_is_unchanged(method):
    model = random_gpt(vocab_size=30, block_size=12)
    checksum = state_checksum(model)
    body = PrefixTuning(model, 3) if method == "prefix" else PromptTuning(model, 3)
    tuner = FineTuner(body, SequenceClassificationHead(16, 2, pool="last"))
    expected = (2 * 2 * 2 * 3 * 8 if method == "prefix" else 3 * 16) + 16 * 2 + 2
    assert count_parameters(tuner, trainable=True) == expected
    optimizer = torch.optim.AdamW([p for p in tuner.parameters() if p.requires_grad], lr=0.1)
    idx = torch.randint(0, 30, (4, 9), generator=torch.Generator().manual_seed(2))
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(tuner(idx), torch.tensor([0, 1, 1, 0])).backward()
        optimizer.step()
    vectors = (body.keys, body.values) if method == "prefix" else (body.prompt,)
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in vectors)
    assert state_checksum(model) == checksum


def test_the_input_must_leave_room_for_the_prefix():
    model = random_gpt(vocab_size=30, block_size=8)
    for tuned in (PrefixTuning(model, 3), PromptTuning(model, 3)):
        tuned(torch.zeros(1, 5, dtype=torch.long))
        with pytest.raises(ValueError, match="1 to 5 after the 3 cached"):
            tuned(torch.zeros(1, 6, dtype=torch.long))


@pytest.mark.parametrize("cls", [PrefixTuning, PromptTuning])
def test_bad_arguments(cls):
    model = random_gpt(vocab_size=30, block_size=8)
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        cls(model, 0)
    with pytest.raises(ValueError, match="leave room"):
        cls(model, 8)
    with pytest.raises(ValueError, match="must hold"):
        cls(model, 2, init_ids=torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="must be a GPT"):
        cls(torch.nn.Linear(2, 2), 2)
