"""One run of a scaling sweep: a model of a given size trained on a given number of tokens.

A scaling law is fitted to many runs that differ only in size ``N`` and training
tokens ``D``. :func:`train_run` makes one: a GPT of one of the :data:`SIZES` (or an
LSTM of :data:`LSTM_SIZES`), trained with :func:`llmcourse.training.train` for
``D / (batch x context)`` steps of AdamW with a warmup and a cosine decay whose length
is the run's own (Hoffmann et al., 2022: a schedule longer than the run overestimates
its loss), and evaluated on held-out text along the way. Everything else is fixed, so
that the runs differ in ``N`` and ``D`` only:

- the corpora of :mod:`llmcourse.data.lm_corpora`: fresh sentences of the course
  grammar (``"grammar"``) or of the Zipfian lexical grammar
  (:func:`~llmcourse.data.lexicon.lexical_grammar`, ``"lexicon"``), unlimited data with
  an exact floor, or the Python documentation's characters (``"prose"``, about 240,000,
  repeated by long runs; ``unique`` of them for a data-limited run);
- batches of 16 windows of 64 tokens (1,024 tokens per step);
- a learning rate that shrinks with the width, ``2e-3 x 128 / d``, as wider models need
  (the ``1/d`` rule of muP, Yang et al., 2021), capped at 1e-2;
- seeds: the model from ``seed``, the data from ``seed + 1``.

``recipes/scaling_sweep.py`` runs the grid and writes the results that
:func:`llmcourse.scaling.load_sweep` reads; Chapter 10 fits them, and trains a few
tiny runs live with the same function.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.checks import check_choice, check_int
from llmcourse.classic.rnn_models import RNNLanguageModel
from llmcourse.data.batching import random_blocks
from llmcourse.data.grammar import Grammar, english_grammar
from llmcourse.data.lexicon import lexical_grammar
from llmcourse.data.lm_corpora import (
    CharacterCorpus,
    GrammarEvalSet,
    grammar_batches,
    grammar_eval_set,
    grammar_vocabulary,
    prose_characters,
    sentence_loss,
)
from llmcourse.models.gpt import GPT
from llmcourse.modules.transformer import TransformerConfig
from llmcourse.scaling.counting import non_embedding_parameters, training_flops_per_token
from llmcourse.training.evaluate import stream_loss
from llmcourse.training.loop import train
from llmcourse.training.objectives import next_token_loss

BATCH_SIZE, CONTEXT = 16, 64
TOKENS_PER_STEP = BATCH_SIZE * CONTEXT
GRAMMAR_EVAL_SEED, GRAMMAR_EVAL_SENTENCES = 7, 1000
CORPORA = ("grammar", "lexicon", "prose")
ARCHITECTURES = ("gpt", "lstm")

SIZES: dict[str, tuple[int, int]] = {
    "A": (2, 24),
    "B": (2, 32),
    "C": (3, 40),
    "D": (3, 56),
    "E": (4, 72),
    "F": (4, 96),
    "G": (5, 120),
    "H": (6, 144),
    "I": (6, 192),
}
"""GPT sizes: name -> (layers, d_model), from about 1.4e4 to 2.7e6 non-embedding
parameters, each about twice the one before; heads of 24 to 48 dimensions."""

LSTM_SIZES: dict[str, int] = {"a": 16, "b": 32, "c": 64, "d": 112, "e": 176}
"""LSTM sizes: name -> hidden size (one layer, embeddings of the same size)."""


@dataclass(frozen=True)
class RunSpec:
    """What one run trains.

    Attributes:
        corpus: ``"grammar"``, ``"lexicon"`` or ``"prose"``.
        arch: ``"gpt"`` or ``"lstm"``.
        size: a key of :data:`SIZES` (GPT) or :data:`LSTM_SIZES` (LSTM).
        tokens: training tokens ``D``, a multiple of 1,024.
        seed: seeds the model (``seed``) and the data (``seed + 1``).
        unique: prose only: train on the first ``unique`` characters (None: all).
        evals: evaluations along the run (the last after the final step).
    """

    corpus: str
    arch: str
    size: str
    tokens: int
    seed: int = 0
    unique: int | None = None
    evals: int = 8

    def __post_init__(self) -> None:
        check_choice("corpus", self.corpus, CORPORA)
        check_choice("arch", self.arch, ARCHITECTURES)
        check_choice("size", self.size, SIZES if self.arch == "gpt" else LSTM_SIZES)
        check_int("tokens", self.tokens, minimum=TOKENS_PER_STEP)
        if self.tokens % TOKENS_PER_STEP:
            raise ValueError(f"tokens must be a multiple of {TOKENS_PER_STEP}, got {self.tokens}")
        if self.unique is not None and self.corpus != "prose":
            raise ValueError("unique applies to the prose corpus only")
        check_int("evals", self.evals)

    @property
    def steps(self) -> int:
        return self.tokens // TOKENS_PER_STEP


def gpt_config(size: str, vocab_size: int) -> TransformerConfig:
    """The GPT of a size: pre-norm LayerNorm, rotary positions, GELU, tied embeddings,
    heads of ``d // max(1, d // 32)`` dimensions, a context of 64 tokens."""
    check_choice("size", size, SIZES)
    layers, d = SIZES[size]
    return TransformerConfig(vocab_size, CONTEXT, d, max(1, d // 32), layers, position="rope")


def learning_rate(d_model: int) -> float:
    """``2e-3 x 128 / d``, at most 1e-2."""
    return min(1e-2, 2e-3 * 128 / d_model)


@cache
def grammar_of(corpus: str) -> Grammar:
    """The grammar of a grammar corpus: the course grammar or the lexical grammar."""
    check_choice("corpus", corpus, ("grammar", "lexicon"))
    return english_grammar() if corpus == "grammar" else lexical_grammar()


@cache
def grammar_eval(corpus: str = "grammar") -> GrammarEvalSet:
    """The held-out sentences of every run on a grammar corpus."""
    return grammar_eval_set(
        GRAMMAR_EVAL_SENTENCES, GRAMMAR_EVAL_SEED, max_length=CONTEXT, grammar=grammar_of(corpus)
    )


@cache
def prose() -> CharacterCorpus:
    return prose_characters()


def build_model(spec: RunSpec) -> tuple[nn.Module, int, dict]:
    """The run's model (seeded), its non-embedding parameters ``N`` and its FLOPs per
    token (for an LSTM: ``6 N`` plus the output layer; no attention)."""
    if spec.corpus == "prose":
        vocab_size = len(prose().vocab)
    else:
        vocab_size = len(grammar_vocabulary(grammar_of(spec.corpus)))
    torch.manual_seed(spec.seed)
    if spec.arch == "gpt":
        config = gpt_config(spec.size, vocab_size)
        return GPT(config), non_embedding_parameters(config), training_flops_per_token(config)
    hidden = LSTM_SIZES[spec.size]
    model = RNNLanguageModel(vocab_size, hidden, hidden, cell="lstm")
    n = sum(p.numel() for p in model.rnn.parameters())
    flops = {"6N": 6 * n, "output layer": 6 * vocab_size * hidden, "attention": 0}
    flops["total"] = sum(flops.values())
    return model, n, flops


def lstm_loss(model: nn.Module, batch: tuple) -> torch.Tensor:
    """Next-token cross-entropy of an :class:`~llmcourse.classic.RNNLanguageModel`."""
    inputs, targets = batch
    logits, _ = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def evaluate_run(model: nn.Module, spec: RunSpec) -> float:
    """Held-out loss, nats per token (the model in eval mode)."""
    if spec.arch == "lstm":  # an RNN LM returns (logits, state)
        wrapped = _LogitsOnly(model)
    else:
        wrapped = model
    if spec.corpus == "prose":
        return stream_loss(wrapped, prose().validation, CONTEXT)
    return sentence_loss(wrapped, grammar_eval(spec.corpus))


class _LogitsOnly(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(ids)[0]


def training_batches(spec: RunSpec):
    if spec.corpus != "prose":
        return grammar_batches(
            BATCH_SIZE, CONTEXT, seed=spec.seed + 1, grammar=grammar_of(spec.corpus)
        )
    text = prose().train if spec.unique is None else prose().train[: spec.unique]
    return random_blocks(text, CONTEXT, BATCH_SIZE, seed=spec.seed + 1)


def curve(losses: list[float], points: int = 40) -> dict[str, list]:
    """A training-loss curve shortened to about ``points`` log-spaced steps: the mean
    loss over each stretch of steps, at the stretch's last step."""
    edges = sorted({round(math.exp(x)) for x in _linspace(0, math.log(len(losses)), points)})
    edges = [e for e in edges if e >= 1]
    steps, means, start = [], [], 0
    for end in edges:
        if end > start:
            steps.append(end)
            means.append(round(sum(losses[start:end]) / (end - start), 5))
            start = end
    return {"steps": steps, "loss": means}


def _linspace(a: float, b: float, n: int) -> list[float]:
    return [a + (b - a) * i / (n - 1) for i in range(n)]


def train_run(spec: RunSpec, progress: bool = False) -> dict:
    """Train and evaluate one run; returns its record (plain data, for a JSON file).

    The record holds the spec, ``N``, ``D``, ``C`` (``6 N D``) and the closed-form FLOPs
    with the output layer and attention, the held-out loss after every evaluation and
    at the end, the training-loss curve, and the seconds it took (machine-dependent,
    for information only).
    """
    start = time.perf_counter()
    model, n, flops_per_token = build_model(spec)
    d_model = SIZES[spec.size][1] if spec.arch == "gpt" else LSTM_SIZES[spec.size]
    steps = spec.steps
    history = train(
        model,
        next_token_loss if spec.arch == "gpt" else lstm_loss,
        training_batches(spec),
        steps=steps,
        lr=learning_rate(d_model),
        weight_decay=0.1,
        grad_clip=1.0,
        schedule="cosine",
        warmup_steps=min(100, max(1, steps // 10)),
        min_lr=learning_rate(d_model) / 10,
        eval_fn=lambda m: evaluate_run(m, spec),
        eval_every=max(1, steps // spec.evals),
        progress=progress,
        desc=f"{spec.corpus} {spec.arch} {spec.size} D={spec.tokens:,}",
    )
    return {
        **asdict(spec),
        "N": n,
        "D": spec.tokens,
        "C": 6 * n * spec.tokens,
        "flops_per_token": flops_per_token,
        "loss": history.eval_loss[-1],
        "eval_steps": history.eval_steps,
        "eval_loss": history.eval_loss,
        "train_curve": curve(history.train_loss),
        "seconds": round(time.perf_counter() - start, 1),
    }
