"""How fast our BPE trains and encodes, next to Hugging Face ``tokenizers`` (Rust).

Usage: ``.venv/bin/python benchmarks/tokenizer_speed.py [VOCAB_SIZE]`` (default 2000)

Both train on the training paragraphs of the Python docs prose with the same
vocabulary size and learn the same merges (checked here, and in
``tests/test_bpe_tokenizers_parity.py``). Then both encode all the prose (training and
validation paragraphs), once as one string and once as a list of paragraphs
(``encode_batch`` for ``tokenizers``), with a cold cache: each run builds a new
tokenizer, and its time is included. Prints the best of three runs of each, the
throughput in MB/s of UTF-8 text, and the ratios. Offline: nothing is downloaded.
``tokenizers`` may use both cores to train and to encode a batch; we use one.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from llmcourse.data import python_docs
from llmcourse.text import BPETokenizer, to_byte_level

EOT = "<|endoftext|>"
REPEATS = 3


def best_time(function: Callable[[], object]) -> tuple[float, object]:
    """The shortest of ``REPEATS`` runs, and the last result."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def train_theirs(texts: list[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def main(vocab_size: int) -> None:
    prose = python_docs()
    text = "\n\n".join(prose.train + prose.validation)
    megabytes = len(text.encode()) / 1e6

    ours_s, ours = best_time(lambda: BPETokenizer.train(prose.train, vocab_size, [EOT]))
    theirs_s, theirs = best_time(lambda: train_theirs(prose.train, vocab_size))
    merges = [list(m) for m in json.loads(theirs.to_str())["model"]["merges"]]
    same = merges == [[to_byte_level(a), to_byte_level(b)] for a, b in ours.merges]
    print(f"training on {sum(map(len, prose.train)) / 1e3:.0f} KB to {vocab_size} tokens:")
    print(f"  llmcourse.text.bpe {ours_s:7.3f} s")
    print(f"  tokenizers    {theirs_s:7.3f} s")
    print(f"  ours / theirs {ours_s / theirs_s:7.1f} x the time; same merges: {same}")

    saved = theirs.to_str()
    paragraphs = prose.train + prose.validation

    # Each run builds a new tokenizer, so that its cache starts empty.
    def ours_one_string() -> list[list[int]]:
        return [BPETokenizer(ours.merges, [EOT]).encode(text)]

    def theirs_one_string() -> list[list[int]]:
        return [Tokenizer.from_str(saved).encode(text).ids]

    def ours_paragraphs() -> list[list[int]]:
        tokenizer = BPETokenizer(ours.merges, [EOT])
        return [tokenizer.encode(p) for p in paragraphs]

    def theirs_paragraphs() -> list[list[int]]:
        return [e.ids for e in Tokenizer.from_str(saved).encode_batch(paragraphs)]

    print(f"encoding {megabytes:.2f} MB of prose:")
    runs = {
        "as one string": (ours_one_string, theirs_one_string),
        "as a batch of paragraphs": (ours_paragraphs, theirs_paragraphs),
    }
    for name, (encode_ours, encode_theirs) in runs.items():
        ours_s, ids = best_time(encode_ours)
        theirs_s, their_ids = best_time(encode_theirs)
        same = [[ours.token(i) for i in x] for x in ids] == [
            [theirs.id_to_token(i) for i in x] for x in their_ids
        ]
        print(f"  {name}:")
        print(f"    llmcourse.text.bpe {megabytes / ours_s:7.2f} MB/s")
        print(f"    tokenizers    {megabytes / theirs_s:7.2f} MB/s")
        print(f"    theirs / ours {ours_s / theirs_s:7.1f} x the throughput; same tokens: {same}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
