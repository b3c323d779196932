"""Chapter 9's three pretrained bodies, one per pretraining objective, at equal compute.

``recipes/objectives_small.py`` pretrains a GPT (causal LM), a BERT (masked LM and
next-sentence prediction) and a T5 (span corruption) of the same width on the same
sentence pairs of the course grammar, each for the steps that spend the same training
FLOPs, then fine-tunes each body, and a random one, on two tasks in three regimes
(:mod:`llmcourse.training.finetuning`). It writes ``weights/objectives/``: ``gpt.pt``,
``bert.pt`` (with its NSP layer, :class:`~llmcourse.training.objective_batches.BERTForPretraining`),
``t5.pt``, and ``card.json`` with the settings, the FLOPs, the held-out metrics
(:func:`objective_metrics`), the fine-tuning table and the files' SHA-256, checked at
every load (:func:`load_objective_model`). The tokenizer is the shipped one
(:func:`~llmcourse.models.pretrained.load_pretrained`).
"""

from __future__ import annotations

import copy
import json
import os
import statistics
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.checks import check_choice
from llmcourse.data.batching import IGNORE_INDEX
from llmcourse.data.documents import topic_documents
from llmcourse.models.bert import BERT
from llmcourse.models.gpt import GPT
from llmcourse.models.pretrained import WEIGHTS_DIR, sha256
from llmcourse.models.t5 import T5
from llmcourse.modules.transformer import TransformerConfig
from llmcourse.text.bpe import BPETokenizer
from llmcourse.training.finetuning import REGIMES, agreement_task, chunking_task, set_trainable
from llmcourse.training.loop import train
from llmcourse.training.objective_batches import (
    BERTForPretraining,
    causal_lm_batches,
    consecutive_pairs,
    encode_documents,
    masked_lm_nsp_batches,
    span_corruption_batches,
)
from llmcourse.training.objectives import next_sentence_pairs, next_token_loss

KINDS = ("gpt", "bert", "t5")
"""The bodies: the causal LM, masked LM + NSP and span-corruption models."""
POOLS = {"gpt": "last", "bert": "first", "t5": "mean", "random": "last"}
"""The pooling of each body for sequence classification: the last token of a causal
body, ``[CLS]`` (the first ``<eot>``) for BERT, the mean of T5's encoder states."""
FINE_TUNING = {
    "steps": 100,
    "lr": 1e-3,
    "warmup_steps": 10,
    "batch_size": 16,
    "n_train": 64,
    "n_test": 300,
}
"""The fine-tuning settings of every run of the recipe's table."""
TASKS = ("agreement", "chunking")
WEIGHTS_FOLDER = WEIGHTS_DIR / "objectives"
RECIPE = "recipes/objectives_small.py"
HELD_OUT_SEED = 12
"""The grammar seed of the held-out documents (the recipe trains on seed 11)."""


def body_config(kind: str, vocab_size: int) -> TransformerConfig:
    """The configuration of each body: width 32, two heads; two blocks for GPT and BERT,
    one encoder and one decoder block for T5."""
    check_choice("kind", kind, KINDS)
    layers = 1 if kind == "t5" else 2
    return TransformerConfig(
        vocab_size=vocab_size, block_size=64, d_model=32, n_heads=2, n_layers=layers
    )


def _folder(directory: str | os.PathLike | None) -> Path:
    folder = WEIGHTS_FOLDER if directory is None else Path(directory)
    if not (folder / "card.json").is_file():
        raise FileNotFoundError(f"no objective bodies at {str(folder)!r}; run `python {RECIPE}`")
    return folder


def objectives_card(directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """The recipe's ``card.json``: ``settings``, ``configs``, ``pretraining`` (steps,
    FLOPs, loss curves), ``held_out``, ``fine_tuning`` (settings and results), ``files``."""
    path = _folder(directory) / "card.json"
    card = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(card, dict) or card.get("format") != 1 or "files" not in card:
        raise ValueError(f"{str(path)!r} is not an objective-bodies card of format 1")
    return card


def load_objective_model(
    kind: str, directory: str | os.PathLike | None = None
) -> GPT | BERTForPretraining | T5:
    """The pretrained model of ``kind`` (``"gpt"``, ``"bert"`` with its NSP layer, or
    ``"t5"``), in eval mode, after checking its SHA-256 against the card."""
    check_choice("kind", kind, KINDS)
    folder = _folder(directory)
    card = objectives_card(folder)
    path = folder / f"{kind}.pt"
    if not path.is_file() or sha256(path) != card["files"][path.name]["sha256"]:
        raise ValueError(
            f"{str(path)!r} is missing, corrupt or not the card's (SHA-256 differs); "
            f"reinstall llmcourse or rerun `python {RECIPE}`"
        )
    config = TransformerConfig(**card["configs"][kind])
    model = {"gpt": GPT, "t5": T5}.get(kind, lambda c: BERTForPretraining(BERT(c)))(config)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def body_of(model: nn.Module) -> nn.Module:
    """What fine-tuning keeps: the BERT inside a :class:`BERTForPretraining`, else the model."""
    return model.bert if isinstance(model, BERTForPretraining) else model


@torch.no_grad()
def objective_metrics(
    models: dict[str, nn.Module],
    tokenizer: BPETokenizer,
    n_sentences: int = 3000,
    batches: int = 8,
    batch_size: int = 64,
) -> dict[str, dict[str, float]]:
    """Each model's objective on held-out documents (seed :data:`HELD_OUT_SEED`), the
    mean over ``batches`` seeded batches: the GPT's next-token loss; the BERT's
    masked-LM loss and accuracy on the selected tokens and its NSP accuracy; the T5's
    loss and token accuracy on the span targets. Losses in nats per token."""
    documents = encode_documents(tokenizer, topic_documents(n_sentences, seed=HELD_OUT_SEED))
    pairs = consecutive_pairs(documents)
    out: dict[str, dict[str, float]] = {}
    for kind, model in models.items():
        check_choice("kind", kind, KINDS)
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        if kind == "gpt":
            source = causal_lm_batches(tokenizer, pairs, batch_size, HELD_OUT_SEED)
        elif kind == "bert":
            nsp = next_sentence_pairs(documents, seed=HELD_OUT_SEED)
            source = masked_lm_nsp_batches(tokenizer, nsp, batch_size, HELD_OUT_SEED)
        else:
            source = span_corruption_batches(tokenizer, pairs, batch_size, HELD_OUT_SEED)
        for _ in range(batches):
            batch = next(source)
            if kind == "gpt":
                scores = {"loss": next_token_loss(model, batch).item()}
            elif kind == "bert":
                inputs, real, labels, is_next = batch
                hidden, nsp_logits = model(inputs, real)
                selected = labels != IGNORE_INDEX
                logits = model.bert.lm_head(hidden[selected])
                scores = {
                    "loss": F.cross_entropy(logits, labels[selected]).item(),
                    "accuracy": (logits.argmax(-1) == labels[selected]).float().mean().item(),
                    "nsp_accuracy": (nsp_logits.argmax(-1) == is_next).float().mean().item(),
                }
            else:
                src, real, tgt_in, tgt_out = batch
                logits = model(src, tgt_in, real)
                scored = tgt_out != IGNORE_INDEX
                scores = {
                    "loss": torch.nn.functional.cross_entropy(
                        logits[scored], tgt_out[scored]
                    ).item(),
                    "accuracy": (logits[scored].argmax(-1) == tgt_out[scored])
                    .float()
                    .mean()
                    .item(),
                }
            for name, value in scores.items():
                sums[name] = sums.get(name, 0.0) + value / batches
        out[kind] = {name: round(value, 4) for name, value in sums.items()}
        model.train(was_training)
    return out


def fine_tune(
    body: nn.Module | None,
    kind: str,
    task: str,
    regime: str,
    tokenizer: BPETokenizer,
    seed: int = 0,
    progress: bool = False,
) -> float:
    """Fine-tune a copy of ``body`` (None: a random GPT, ``kind="random"``) on ``task``
    (``"agreement"`` or ``"chunking"``) in ``regime`` with :data:`FINE_TUNING`'s
    settings; returns the test metric. The body given is not changed."""
    check_choice("kind", kind, (*KINDS, "random"))
    check_choice("task", task, TASKS)
    check_choice("regime", regime, REGIMES)
    s = FINE_TUNING
    if task == "agreement":
        data = agreement_task(tokenizer, s["n_train"], s["n_test"], pool=POOLS[kind])
    else:
        data = chunking_task(tokenizer, s["n_train"], s["n_test"])
    torch.manual_seed(seed)
    if kind == "random":
        body = GPT(body_config("gpt", len(tokenizer)))
    elif body is None:
        raise ValueError(f"a {kind} body is needed")
    else:
        body = copy.deepcopy(body_of(body))
    tuner = data.tuner(body, body.config.d_model)
    set_trainable(tuner, regime)
    train(
        tuner,
        data.loss_fn,
        data.batches(s["batch_size"], seed),
        steps=s["steps"],
        lr=s["lr"],
        schedule="cosine",
        warmup_steps=s["warmup_steps"],
        progress=progress,
        desc=f"{task}, {kind}, {regime}",
    )
    return data.evaluate(tuner)


def fine_tuning_table(card: dict[str, Any]) -> dict[tuple[str, str, str], float]:
    """The card's fine-tuning results as ``{(task, regime, body): mean score}``."""
    return {
        (r["task"], r["regime"], r["body"]): statistics.fmean(r["scores"])
        for r in card["fine_tuning"]["results"]
    }
