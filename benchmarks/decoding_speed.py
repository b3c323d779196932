"""How much the key-value cache and speculative decoding speed up generation.

Usage: ``.venv/bin/python benchmarks/decoding_speed.py``

1. **KV cache.** A random GPT (d_model 128, 4 layers, 4 heads, block_size 512) greedily
   continues a 32-token prompt by 32 to 480 tokens, once with the cache (each step reads
   one new token) and once without (each step reads the whole sequence again). Prints
   both times and their ratio, and checks that the tokens are identical. Without the
   cache, step ``t`` runs the model over ``t`` positions, so ``n`` tokens cost
   ``O(n^2)`` position-passes; with it, one position per step, and only the attention
   over the cache grows with ``t``. The weights do not matter for speed, so they are
   random here.
2. **Speculative decoding.** The target is the course's pretrained model
   (:func:`llmcourse.models.pretrained.load_pretrained`; ``--pretrained-dir DIR`` loads it
   from a recipe's ``--out`` folder instead). The draft is an early exit of the target:
   its embeddings, first block, final norm and output layer as a one-block GPT,
   fine-tuned for a few hundred steps on the course prose (``python_docs()`` training
   paragraphs, in the target's tokens; about half a minute). (A small GPT trained from
   scratch for that long agrees with the target too rarely to help.) From the
   beginnings of validation paragraphs, greedy decoding with the target is compared with
   speculative greedy decoding for several ``gamma`` (tokens checked identical), and
   sampling with speculative sampling: tokens/s, speed-up, acceptance rate and tokens
   per target call. All use KV caches. The speed-up is bounded by the cost of the draft
   relative to the target (the "draft alone" row): with models this small, the output
   layer and Python's overhead per call weigh as much as the blocks.

Everything runs on one thread (the machine is shared, and one thread keeps the timings
steadier); each time is the best of a few runs. Absolute times depend on the machine
and its load; the ratios are the result. No downloads.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable

import torch

from llmcourse.data import EOT, document_stream, python_docs, random_blocks
from llmcourse.generation import (
    SpeculativeResult,
    greedy,
    sample,
    speculative_greedy,
    speculative_sample,
)
from llmcourse.models import GPT, load_pretrained
from llmcourse.modules import TransformerConfig
from llmcourse.training import next_token_loss, train

PROMPT_LENGTH = 32
NEW_TOKENS = (32, 64, 128, 256, 480)  # prompt + 480 = block_size 512
SPEC_PROMPT, SPEC_PROMPTS = 16, 4  # prompt tokens, prompts; new tokens fill the block
GAMMAS = (2, 3, 4, 6)
SAMPLE_GAMMA = 3
DRAFT_LAYERS, DRAFT_STEPS, BATCH, DRAFT_LR = 1, 200, 8, 1e-3


def best_time(function: Callable[[], object], budget: float = 3.0, most: int = 5) -> float:
    """The shortest of several runs of ``function``: at least one, and more (up to
    ``most``) while the runs so far took less than ``budget`` seconds in all."""
    times: list[float] = []
    while not times or (sum(times) < budget and len(times) < most):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def cache_benchmark() -> None:
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=128, block_size=512, d_model=128, n_heads=4, n_layers=4)
    model = GPT(config).eval()
    prompt = torch.randint(0, config.vocab_size, (1, PROMPT_LENGTH))
    print(
        f"1. KV cache: greedy decoding with a random GPT (d_model {config.d_model}, "
        f"{config.n_layers} layers, block_size {config.block_size}), "
        f"prompt {PROMPT_LENGTH} tokens, batch 1"
    )
    print(f"{'new tokens':>10} {'cached s':>9} {'uncached s':>11} {'ratio':>6}  same tokens")
    for n in NEW_TOKENS:
        same = torch.equal(greedy(model, prompt, n), greedy(model, prompt, n, use_cache=False))
        cached = best_time(lambda n=n: greedy(model, prompt, n))
        uncached = best_time(lambda n=n: greedy(model, prompt, n, use_cache=False))
        print(f"{n:>10} {cached:>9.3f} {uncached:>11.3f} {uncached / cached:>6.1f}  {same}")


def early_exit_draft(target: GPT, train_ids: torch.Tensor, eval_ids: torch.Tensor) -> GPT:
    """The target's embeddings, first ``DRAFT_LAYERS`` blocks, final norm and output layer
    as a shallower GPT, fine-tuned for ``DRAFT_STEPS`` steps on windows of ``train_ids``;
    prints its loss and the target's on the first 16 windows of ``eval_ids``."""
    config = dataclasses.replace(target.config, n_layers=DRAFT_LAYERS, dropout=0.0)
    draft = GPT(config)
    shared = draft.state_dict().keys()
    draft.load_state_dict({k: v for k, v in target.state_dict().items() if k in shared})
    block = config.block_size
    windows = eval_ids[: 16 * (block + 1)].view(16, block + 1)
    validation = (windows[:, :-1], windows[:, 1:])
    history = train(
        draft,
        next_token_loss,
        random_blocks(train_ids, block, BATCH, seed=1),
        DRAFT_STEPS,
        lr=DRAFT_LR,
        eval_fn=lambda m: next_token_loss(m, validation),
        schedule="cosine",
        warmup_steps=20,
        desc="fine-tuning the draft",
    )
    with torch.no_grad():
        target_loss = next_token_loss(target, validation).item()
    print(
        f"   draft: the target's first {DRAFT_LAYERS} block(s) with its embeddings and output "
        f"layer, {sum(p.numel() for p in draft.parameters()):,} parameters, fine-tuned for "
        f"{DRAFT_STEPS} steps of {BATCH} x {block} tokens of prose"
    )
    print(
        f"   validation loss (nats/token, 16 prose windows): draft "
        f"{history.eval_loss[-1]:.2f}, target {target_loss:.2f}"
    )
    return draft.eval()


def speculative_benchmark(directory: str | None) -> None:
    print("\n2. Speculative decoding: a small draft proposes, a larger target verifies")
    target, tokenizer = load_pretrained(directory=directory)
    config = target.config
    print(
        f"   target: the course's pretrained model, "
        f"{sum(p.numel() for p in target.parameters()):,} parameters, d_model "
        f"{config.d_model}, {config.n_layers} layers, vocabulary {config.vocab_size}, "
        f"block_size {config.block_size}"
    )
    docs = python_docs()
    train_ids, eval_ids = (document_stream(tokenizer, d) for d in (docs.train, docs.validation))
    draft = early_exit_draft(target, train_ids, eval_ids)
    eot = [tokenizer.specials[EOT]]
    prompts = [
        torch.tensor([eot + tokenizer.encode(p)[: SPEC_PROMPT - 1]])
        for p in docs.validation[:SPEC_PROMPTS]
    ]
    new_tokens = config.block_size - SPEC_PROMPT
    n_tokens = new_tokens * len(prompts)
    print(
        f"   {len(prompts)} prompts of {SPEC_PROMPT} tokens (<|endoftext|> and the beginning "
        f"of a validation paragraph), {new_tokens} new tokens each; every method with KV caches"
    )

    def plain(model: GPT = target) -> list[torch.Tensor]:
        return [greedy(model, p, new_tokens) for p in prompts]

    reference = plain()
    print(f"   the target's greedy continuation: {tokenizer.decode(reference[0][0].tolist())!r}")
    plain_speed = n_tokens / best_time(plain)
    draft_speed = n_tokens / best_time(lambda: plain(draft))
    print(
        f"{'method':>24} {'tokens/s':>9} {'speed-up':>9} {'acceptance':>11} "
        f"{'tokens/target call':>19}  same tokens as greedy"
    )
    print(f"{'greedy (target)':>24} {plain_speed:>9.0f} {1.0:>9.2f} {'':>11} {1.0:>19.2f}")
    print(f"{'greedy (draft alone)':>24} {draft_speed:>9.0f} {draft_speed / plain_speed:>9.2f}")
    for gamma in GAMMAS:

        def speculative(gamma: int = gamma) -> list[SpeculativeResult]:
            return [speculative_greedy(target, draft, p, new_tokens, gamma) for p in prompts]

        results = speculative()
        same = all(torch.equal(r.tokens, t) for r, t in zip(results, reference, strict=True))
        seconds = best_time(speculative)
        report(f"speculative, gamma {gamma}", results, n_tokens, seconds, plain_speed, same)

    print(
        "   sampling at temperature 1 (the draws differ from plain sampling's, their "
        "distribution does not)"
    )

    def plain_sample() -> None:
        generator = torch.Generator().manual_seed(0)
        for p in prompts:
            sample(target, p, new_tokens, generator=generator)

    sample_speed = n_tokens / best_time(plain_sample)
    print(f"{'sampling (target)':>24} {sample_speed:>9.0f} {1.0:>9.2f} {'':>11} {1.0:>19.2f}")

    def speculative_sampling() -> list[SpeculativeResult]:
        generator = torch.Generator().manual_seed(0)
        return [
            speculative_sample(target, draft, p, new_tokens, SAMPLE_GAMMA, generator=generator)
            for p in prompts
        ]

    results = speculative_sampling()
    seconds = best_time(speculative_sampling)
    report(f"spec. sampling, gamma {SAMPLE_GAMMA}", results, n_tokens, seconds, sample_speed)


def report(
    name: str,
    results: list[SpeculativeResult],
    n_tokens: int,
    seconds: float,
    baseline: float,
    same: bool | None = None,
) -> None:
    """One row of the speculative table."""
    speed = n_tokens / seconds
    acceptance = sum(r.accepted for r in results) / sum(r.proposed for r in results)
    per_call = n_tokens / sum(r.target_calls for r in results)
    print(
        f"{name:>24} {speed:>9.0f} {speed / baseline:>9.2f} {acceptance:>11.2f} "
        f"{per_call:>19.2f}  {'' if same is None else same}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pretrained-dir",
        help="load the target from this folder (e.g. the --out of recipes/pretrain_small.py) "
        "instead of the shipped model",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    cache_benchmark()
    speculative_benchmark(args.pretrained_dir)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
