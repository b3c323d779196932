"""How fast the offline corpora are produced.

Usage: ``.venv/bin/python benchmarks/corpus_speed.py``

Prints tokens per second for sampling the probabilistic grammar (the target is a
million tokens in a few seconds) and for loading and tokenizing the Python docs.
"""

from __future__ import annotations

import time

from llmcourse.data import english_grammar, python_docs
from llmcourse.text import tokenized_sentences

TARGET_TOKENS_PER_S = 1_000_000 / 5  # a million tokens in five seconds


def main() -> None:
    grammar = english_grammar()
    start = time.perf_counter()
    samples = grammar.generate(130_000, seed=0)
    seconds = time.perf_counter() - start
    tokens = sum(len(s.tokens) for s in samples)
    rate = tokens / seconds
    print(
        f"grammar: {tokens:,} tokens in {seconds:.2f} s = {rate:,.0f} tokens/s "
        f"= {rate / TARGET_TOKENS_PER_S:.2f} x target"
    )

    start = time.perf_counter()
    split = python_docs()
    sentences = tokenized_sentences(split.train + split.validation)
    seconds = time.perf_counter() - start
    tokens = sum(map(len, sentences))
    print(f"python docs: {tokens:,} tokens loaded and tokenized in {seconds:.2f} s")


if __name__ == "__main__":
    main()
