"""Training throughput of the course's GPT and loop against plain PyTorch, and MFU.

Usage: ``.venv/bin/python benchmarks/training_throughput.py [--threads 1 2] [--rounds R]``

For each thread count, in one run:

1. **Peak.** The best rate of a square matrix product (``n = 1024``), in fp32 and in
   bf16: this machine's measured peak FLOP/s (``2 n^3`` per product).
2. **Ours against a reference.** The course's ``GPT`` trained by ``llmcourse.training.
   train``, and :class:`ReferenceGPT`, the shortest faithful plain-PyTorch GPT of the same
   shape (fused QKV projection, ``F.scaled_dot_product_attention``, ``nn.LayerNorm``,
   ``torch.optim.AdamW``, the same clipping), train on the same batches (the shipped
   model's sizes with GPT-2's choices: learned positions, LayerNorm, GELU, tied
   embeddings; batch 32 x 128 tokens). Rounds of a few steps alternate between the two
   so that both see the same machine load; each side's fastest round counts. Printed:
   tokens/s of each and ours as a ratio of the reference's, in fp32 and under bf16
   autocast.
3. **FLOPs per step**: ``torch.utils.flop_counter.FlopCounterMode`` on one real training
   step (forward and backward) of our model with the written-out attention (the counter
   does not see PyTorch's fused CPU attention kernel, which does the same arithmetic),
   against the estimate ``6 N + 12 L T d`` per token (Kaplan et al. 2020; PaLM's
   appendix B), ``N`` the weights used in matrix products.
4. **MFU** = counted FLOPs x steps per second / the measured peak of the same precision.

Absolute numbers depend on the machine and its load; the ratios are the result. A small
model on a CPU is far from its peak: its matrices are narrow (d_model 128), and the
softmax over the vocabulary, the norms, GELU, the optimizer and Python do work that is
not counted as model FLOPs. No downloads.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from llmcourse.models import GPT, gpt2_config, model_card
from llmcourse.modules import TransformerConfig, record_attention
from llmcourse.training import next_token_loss, train

BATCH_SIZE = 32
MATMUL_SIZE = 1024
STEPS_PER_ROUND = 3


class ReferenceBlock(nn.Module):
    """A pre-norm GPT-2 block in plain PyTorch, QKV in one projection."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: Tensor) -> Tensor:
        batch, time, d = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(d, dim=2)
        q, k, v = (t.view(batch, time, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(batch, time, d))
        return x + self.out(F.gelu(self.fc(self.ln_2(x))))


class ReferenceGPT(nn.Module):
    """Token and position embeddings, blocks, a final norm, a tied output layer."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        d = config.d_model
        self.wte = nn.Embedding(config.vocab_size, d)
        self.wpe = nn.Embedding(config.block_size, d)
        self.blocks = nn.ModuleList(
            ReferenceBlock(d, config.n_heads) for _ in range(config.n_layers)
        )
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.vocab_size, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx: Tensor) -> Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def matmul_peak(dtype: torch.dtype, seconds: float = 1.5) -> float:
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


def random_batches(config: TransformerConfig, seed: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    while True:
        ids = torch.randint(
            config.vocab_size, (BATCH_SIZE, config.block_size + 1), generator=generator
        )
        yield ids[:, :-1], ids[:, 1:]


def counted_flops(config: TransformerConfig) -> int:
    """FLOPs of one forward and backward pass, counted by torch's FlopCounterMode."""
    torch.manual_seed(0)
    model = GPT(config)
    with record_attention(model), FlopCounterMode(display=False) as counter:
        next_token_loss(model, next(random_batches(config))).backward()
    return counter.get_total_flops()


def estimated_flops(config: TransformerConfig) -> int:
    """``(6 N + 12 L T d)`` per token times the tokens of one batch."""
    d, length, layers = config.d_model, config.block_size, config.n_layers
    matmul_weights = layers * (4 * d * d + 2 * d * config.ffn_size) + config.vocab_size * d
    per_token = 6 * matmul_weights + 12 * layers * length * d
    return per_token * BATCH_SIZE * length


def our_rounds(config: TransformerConfig, precision: str) -> Callable[[list], None]:
    """A function that trains the course's GPT with ``train`` on the given batches."""
    torch.manual_seed(0)
    model = GPT(config)

    def run(batches: list) -> None:
        train(model, next_token_loss, batches, len(batches), progress=False, precision=precision)

    return run


def reference_rounds(config: TransformerConfig, precision: str) -> Callable[[list], None]:
    """The same, for the reference: the plain loop every PyTorch tutorial writes."""
    torch.manual_seed(0)
    model = ReferenceGPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def run(batches: list) -> None:
        for inputs, targets in batches:
            with autocast:
                logits = model(inputs)
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            loss.item()

    return run


def fastest_rounds(runners: dict[str, Callable[[list], None]], config, rounds: int) -> dict:
    """Seconds per step of each runner: the fastest of ``rounds`` alternating rounds."""
    batches = random_batches(config)
    for run in runners.values():  # warm-up: allocations, the optimizer's state
        run([next(batches) for _ in range(2)])
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(rounds):
        chunk = [next(batches) for _ in range(STEPS_PER_ROUND)]
        for name, run in runners.items():
            start = time.perf_counter()
            run(chunk)
            best[name] = min(best[name], (time.perf_counter() - start) / STEPS_PER_ROUND)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    if min(args.threads) < 1 or args.rounds < 1:
        parser.error("--threads and --rounds must be >= 1")
    card = model_card()["config"]
    config = gpt2_config(
        card["vocab_size"], card["block_size"], card["d_model"], card["n_heads"], card["n_layers"]
    )
    tokens = BATCH_SIZE * config.block_size
    counted, estimate = counted_flops(config), estimated_flops(config)
    print(
        f"GPT-2-style GPT of the shipped model's sizes: d_model {config.d_model}, "
        f"{config.n_layers} layers, {config.n_heads} heads, block {config.block_size}, "
        f"vocabulary {config.vocab_size}; batch {BATCH_SIZE} x {config.block_size} tokens"
    )
    print(
        f"FLOPs per step: counted {counted / 1e9:.2f} G, estimated 6N + 12LTd "
        f"{estimate / 1e9:.2f} G (ratio {counted / estimate:.3f})"
    )
    print(
        "threads  precision  peak GFLOP/s  reference tok/s  ours tok/s  ours/reference  "
        "MFU ours  MFU reference"
    )
    speed = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            peak = matmul_peak(dtype)
            runners = {
                "reference": reference_rounds(config, precision),
                "ours": our_rounds(config, precision),
            }
            seconds = fastest_rounds(runners, config, args.rounds)
            speed[threads, precision] = tokens / seconds["ours"]
            print(
                f"{threads:7d}  {precision:>9}  {peak / 1e9:12.1f}  "
                f"{tokens / seconds['reference']:15.0f}  {tokens / seconds['ours']:10.0f}  "
                f"{seconds['reference'] / seconds['ours']:14.3f}  "
                f"{counted / seconds['ours'] / peak:8.1%}  "
                f"{counted / seconds['reference'] / peak:13.1%}"
            )
    for threads in args.threads:
        ratio = speed[threads, "bf16"] / speed[threads, "fp32"]
        print(f"{threads} thread(s): bf16 autocast trains {ratio:.2f}x as fast as fp32 (ours)")
    print("MFU = counted FLOPs per step x steps per second / measured matmul peak")


if __name__ == "__main__":
    main()
