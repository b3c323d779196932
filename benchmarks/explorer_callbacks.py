"""How long each explorer takes to redraw when a reader moves one of its controls.

Usage: ``.venv/bin/python benchmarks/explorer_callbacks.py [REPEATS]`` (default 5)

Builds the six explorers of the book with the inputs their chapters give them (the
shipped model and sweep, on one thread), then, for every control, sets it to each of a
few values in turn, ``REPEATS`` times, and times each change: the callback recomputes
what the explorer shows and renders it (a PNG or an HTML fragment) into its output, which
is all the kernel does before the browser shows it. Prints the median and the largest
time per control, in milliseconds of wall time and of process CPU time (the CPU time is
the better guide on a busy machine). A callback that a reader should not notice stays
well under 100 ms. Offline: nothing is downloaded.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from llmcourse.data import EOT, python_docs
from llmcourse.explorers import (
    explore_attention,
    explore_bpe,
    explore_chat,
    explore_quantization,
    explore_sampling,
    explore_scaling_fit,
)
from llmcourse.models import load_pretrained
from llmcourse.scaling import grammar_eval, load_sweep


def explorers() -> dict:
    """Each explorer with, for each of its controls, the values to cycle through."""
    model, tokenizer = load_pretrained()
    instruct, chat_tokenizer = load_pretrained("instruct")
    fewshot, _ = load_pretrained("fewshot")
    eot = tokenizer.specials[EOT]
    isoflop = [r for r in load_sweep()["runs"] if r["group"].startswith("isoflop lexicon")]
    paragraph = python_docs().validation[1]
    up = model.transformer.blocks[1].ffn.up.weight.detach()
    sentence = "the writers near the clever child are happy ."
    return {
        "attention (Chapter 6)": (
            explore_attention(
                model, lambda text: [eot, *tokenizer.encode(text)], tokenizer.decode, sentence
            ),
            {
                "layer": [1, 2, 3, 0],
                "head": [0, 1, "all", 3, "all"],
                "text": ["the cat that sees the dogs sleeps quietly .", sentence],
            },
        ),
        "sampling (Chapter 8)": (
            explore_sampling(
                model,
                lambda text: [eot, *tokenizer.encode(text)],
                tokenizer.decode,
                "the cat",
                temperature=1.5,
                min_p=0.1,
            ),
            {
                "temperature": [0.5, 1.0, 2.0, 1.5],
                "top_k": [5, 40, 0],
                "top_p": [0.5, 0.9, 1.0],
                "min_p": [0.0, 0.3, 0.1],
                "prompt": ["The function returns", "the cat"],
            },
        ),
        "scaling fit (Chapter 10)": (
            explore_scaling_fit(isoflop, floor=grammar_eval("lexicon").floor),
            {"k": [2, 3, 4]},
        ),
        "quantization (Chapter 13)": (
            explore_quantization(up),
            {
                "bits": [2, 3, 8, 4],
                "block_size": [16, 1024, up.numel(), 64],
                "scheme": ["zeropoint", "normalfloat", "absmax"],
            },
        ),
        "BPE merges (Chapter 5)": (
            explore_bpe(paragraph, 18),
            {"n_merges": [0, 1, 50, 158, 18], "text": ["the car the cat the rat", paragraph]},
        ),
        "chat (Chapter 11)": (
            explore_chat(
                instruct, chat_tokenizer, "Write the letters in capitals. / b a d", base=fewshot
            ),
            {
                "decoding": ["sample", "greedy"],
                "temperature": [0.5, 1.5, 1.0],
                "seed": [1, 2, 0],
                "max_new_tokens": [8, 64, 32],
                "show_base": [False, True],
                "message": [
                    "Reverse the letters. / d o g s",
                    "Write the letters in capitals. / b a d",
                ],
            },
        ),
    }


def main(repeats: int) -> None:
    torch.set_num_threads(1)
    print(f"{'explorer':28s} {'control':12s} {'median ms':>10s} {'max ms':>8s} "
          f"{'median CPU ms':>14s}")  # fmt: skip
    for name, (explorer, moves) in explorers().items():
        for control, values in moves.items():
            wall, cpu = [], []
            for _ in range(repeats):
                for value in values:
                    start, start_cpu = time.perf_counter(), time.process_time()
                    explorer.controls[control].value = value
                    wall.append(time.perf_counter() - start)
                    cpu.append(time.process_time() - start_cpu)
            print(
                f"{name:28s} {control:12s} {1000 * statistics.median(wall):10.1f} "
                f"{1000 * max(wall):8.1f} {1000 * statistics.median(cpu):14.1f}"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
