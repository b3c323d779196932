"""Training throughput and model FLOP utilisation (MFU) of the course's GPT on this CPU.

Usage: ``.venv/bin/python benchmarks/training_throughput.py [--threads N] [--steps S]``

In one run, on the same threads:

1. **Peak.** The best rate of a square matrix multiply (``n = 1024``), in fp32 and in
   bf16, is this machine's measured peak in FLOP/s: ``2 n^3`` operations per product.
2. **Training.** The GPT of the shipped pretrained model's card (random weights; speed
   does not depend on them) trains for ``--steps`` steps of ``llmcourse.training.train``
   on random token windows (batch 32 x 128 tokens), in fp32 and under bf16 autocast.
   Prints tokens/s.
3. **FLOPs per step**, counted two ways: by ``torch.utils.flop_counter.FlopCounterMode``
   on one real training step (forward and backward), and by the usual estimate
   ``6 N + 12 L T d`` per token (Kaplan et al. 2020; PaLM's appendix B), where ``N``
   counts the weights used in matrix products (the blocks' projections and the output
   layer) and ``12 L T d`` is the attention scores and their weighted sum.
4. **MFU** = achieved FLOP/s (counted FLOPs x steps / time) / measured peak, for each
   precision against its own peak.

Absolute numbers depend on the machine and its load; the ratios are the result. A small
model on a CPU is far from its peak: its matrices are narrow (d_model 128), and the
softmax, norms, GELU, optimizer and Python overhead do work that is not counted as
model FLOPs. No downloads.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from llmcourse.models import GPT, model_card
from llmcourse.modules import TransformerConfig
from llmcourse.training import next_token_loss, train

BATCH_SIZE = 32
MATMUL_SIZE = 1024


def matmul_peak(dtype: torch.dtype, seconds: float = 2.0) -> float:
    """The best FLOP/s of an ``n x n`` matrix product over about ``seconds`` of trials."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=generator).to(dtype)
    b = torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=generator).to(dtype)
    a @ b  # warm-up
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * MATMUL_SIZE**3 / best


def random_batches(config: TransformerConfig, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    shape = (BATCH_SIZE, config.block_size + 1)
    while True:
        ids = torch.randint(config.vocab_size, shape, generator=generator)
        yield ids[:, :-1], ids[:, 1:]


def counted_flops(config: TransformerConfig, precision: str) -> int:
    """FLOPs of one forward and backward pass, counted by torch's FlopCounterMode."""
    torch.manual_seed(0)
    model = GPT(config)
    batch = next(random_batches(config))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with FlopCounterMode(display=False) as counter:
        with autocast:
            loss = next_token_loss(model, batch)
        loss.backward()
    return counter.get_total_flops()


def estimated_flops(config: TransformerConfig) -> int:
    """``(6 N + 12 L T d)`` per token times the tokens of one batch."""
    d, length, layers = config.d_model, config.block_size, config.n_layers
    matmul_weights = layers * (4 * d * d + 2 * d * config.ffn_size) + config.vocab_size * d
    per_token = 6 * matmul_weights + 12 * layers * length * d
    return per_token * BATCH_SIZE * length


def training_rate(config: TransformerConfig, precision: str, steps: int) -> float:
    """Optimisation steps per second of ``train`` (after two warm-up steps)."""
    torch.manual_seed(0)
    model = GPT(config)
    common = dict(lr=1e-3, progress=False, precision=precision)
    train(model, next_token_loss, random_batches(config), 2, **common)
    start = time.perf_counter()
    train(model, next_token_loss, random_batches(config, seed=1), steps, **common)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    if args.threads < 1 or args.steps < 1:
        parser.error("--threads and --steps must be >= 1")
    torch.set_num_threads(args.threads)
    config = TransformerConfig(**model_card()["config"])
    tokens_per_step = BATCH_SIZE * config.block_size
    print(
        f"GPT of the pretrained model's card: d_model {config.d_model}, {config.n_layers} "
        f"layers, block {config.block_size}, vocabulary {config.vocab_size}; batch "
        f"{BATCH_SIZE} x {config.block_size} tokens; {args.threads} thread(s)"
    )
    estimate = estimated_flops(config)
    print(f"estimated FLOPs per step (6N + 12LTd per token): {estimate / 1e9:.2f} G")
    header = "precision  peak GFLOP/s  counted GFLOP/step  tokens/s  achieved GFLOP/s  MFU"
    print(header)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak = matmul_peak(dtype)
        flops = counted_flops(config, precision)
        rate = training_rate(config, precision, args.steps)
        achieved = flops * rate
        print(
            f"{precision:>9}  {peak / 1e9:11.1f}  {flops / 1e9:18.2f}  "
            f"{rate * tokens_per_step:8.0f}  {achieved / 1e9:16.2f}  {achieved / peak:4.1%}"
        )
    print("MFU = counted FLOPs per step x steps per second / measured matmul peak")


if __name__ == "__main__":
    main()
