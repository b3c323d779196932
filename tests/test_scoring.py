"""Scoring completions in one forward pass, and grouped generation (llmcourse.prompting.scoring)."""

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.generation import greedy, sample
from llmcourse.prompting.scoring import encode_pairs, generate_completions, score_completions

V = 12


@pytest.fixture(scope="module")
def model():
    return random_gpt(seed=3, scale=4.0, vocab_size=V, block_size=16).eval()


def random_prompts(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, V, (int(torch.randint(1, 7, (1,), generator=g)),), generator=g).tolist()
        for _ in range(n)
    ]


def test_a_greedy_match_is_exactly_what_greedy_decoding_writes(model):
    prompts = random_prompts(30)
    pairs, wrong = [], []
    for prompt in prompts:
        out = greedy(model, torch.tensor([prompt]), 4)[0, len(prompt) :].tolist()
        pairs.append((prompt, out))
        changed = list(out)
        changed[-1] = (changed[-1] + 1) % V
        wrong.append((prompt, changed))
    assert all(s.greedy_match for s in score_completions(model, pairs, batch_size=7))
    assert not any(s.greedy_match for s in score_completions(model, wrong, batch_size=7))


def test_log_probs_match_a_forward_pass_per_pair_whatever_the_batch(model):
    prompts = random_prompts(10, seed=1)
    pairs = [(p, [(i + j) % V for j in range(1 + i % 3)]) for i, p in enumerate(prompts)]
    batched = score_completions(model, pairs, batch_size=4)
    for (prompt, completion), score in zip(pairs, batched, strict=True):
        ids = torch.tensor([prompt + completion])
        log_probs = model(ids[:, :-1])[0].log_softmax(-1)
        by_hand = sum(log_probs[len(prompt) - 1 + j, c].item() for j, c in enumerate(completion))
        assert score.log_prob == pytest.approx(by_hand, rel=1e-5)
        assert score.n_tokens == len(completion)


def test_score_completions_refuses_bad_pairs(model):
    with pytest.raises(ValueError, match="no \\(prompt, completion\\) pairs"):
        score_completions(model, [])
    with pytest.raises(ValueError, match="at least one token"):
        score_completions(model, [([1], [])])
    with pytest.raises(ValueError, match="do not fit the model's context of 16"):
        score_completions(model, [([1] * 10, [2] * 8)])


def test_generate_completions_equals_greedy_and_sample_prompt_by_prompt(model):
    prompts = random_prompts(12, seed=2)
    outs = generate_completions(model, prompts, 5, stop_id=3, batch_size=3)
    for prompt, out in zip(prompts, outs, strict=True):
        ref = greedy(model, torch.tensor([prompt]), 5)[0, len(prompt) :].tolist()
        assert out == (ref[: ref.index(3)] if 3 in ref else ref)
    # Sampling: one batch of equal prompts draws what sample() draws for that batch.
    same = [prompts[0]] * 4
    got = generate_completions(
        model, same, 5, temperature=1.0, generator=torch.Generator().manual_seed(7)
    )
    ref = sample(model, torch.tensor(same), 5, 1.0, generator=torch.Generator().manual_seed(7))
    assert got == ref[:, len(prompts[0]) :].tolist()
    with pytest.raises(ValueError, match="non-empty list of non-empty"):
        generate_completions(model, [[]], 3)


def test_encode_pairs_keeps_prompt_and_completion_apart():
    from llmcourse.models import load_pretrained

    tokenizer = load_pretrained()[1]
    pairs = encode_pairs(tokenizer, ["Q: d o g\nA:"], [" g o d\n"])
    assert pairs == [(tokenizer.encode("Q: d o g\nA:"), tokenizer.encode(" g o d\n"))]
    assert pairs[0][0] + pairs[0][1] == tokenizer.encode("Q: d o g\nA: g o d\n")
    with pytest.raises(ValueError, match="2 prompts but 1 completions"):
        encode_pairs(tokenizer, ["a", "b"], ["c"])
