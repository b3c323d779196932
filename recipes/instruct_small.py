"""Recipe: the course's few-shot and instruction-tuned models, from the shipped small model.

    python recipes/instruct_small.py --fresh     # both shipped models (about 20 minutes)
    python recipes/instruct_small.py --tiny --out /tmp/instruct     # a smoke run (a minute)

A model of a million parameters pretrained on prose and grammar sentences neither learns
from demonstrations in its prompt nor follows instructions: nothing in its training text
looks like either. This recipe teaches both, in two stages, all seeded and offline:

1. **Continued pretraining on a few-shot mixture** -> ``weights/fewshot``. The shipped
   ``small`` model (:func:`llmcourse.models.load_pretrained`), with its context doubled
   to 256 tokens (rotary positions have no table to grow), keeps training with the causal
   loss on a mixture: every batch holds ``prose_batch`` windows of the Python-docs prose,
   ``grammar_batch`` of grammar sentences (so that it keeps what it knew) and
   ``task_batch`` of **few-shot documents**
   (:func:`llmcourse.prompting.task_data.few_shot_document`):
   demonstrations of the training tasks, arithmetic with direct answers and chains of
   thought, facts and passages of the knowledge base's seen animals, lists of
   instructions. In-context learning at this scale has to be trained for: that is what
   GPT-3 got from the sheer variety of its pretraining text, and what this mixture
   supplies on purpose.
2. **Supervised fine-tuning** -> ``weights/instruct``. From the stage-1 model, dialogues in
   the chat template (:mod:`llmcourse.prompting.chat`; one to three exchanges, a system
   message a quarter of the time; :func:`llmcourse.prompting.task_data.dialogue`), with the
   loss on the assistant's tokens only. Chapter 12 starts from this model.

Both models keep the tokenizer and architecture of ``small``. ``fewshot`` is stored in
bfloat16 (half the bytes; the chapter prompts it and fine-tunes copies of it for a few
dozen steps), ``instruct`` in float32 (chapter 12 fine-tunes it further). Each card
documents the evaluation of :mod:`llmcourse.prompting.evaluation` that
``tests/test_instruct_model.py`` recomputes. Each stage saves a checkpoint in ``--work``
and resumes from it after an interruption (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from provenance import git_revision

from llmcourse.data import (
    document_stream,
    english_grammar,
    grammar_text,
    python_docs,
    random_blocks,
)
from llmcourse.models import (
    CARD_FILE,
    CARD_FORMAT,
    GPT,
    MODEL_FILE,
    TOKENIZER_FILE,
    WEIGHTS_DIR,
    load_pretrained,
    sha256,
    validation_losses,
)
from llmcourse.prompting.chat import encode_dialogue, format_dialogue, sft_batch, sft_example
from llmcourse.prompting.evaluation import fewshot_card_metrics, instruct_card_metrics
from llmcourse.prompting.task_data import DOCUMENT_WEIGHTS, dialogue, few_shot_document
from llmcourse.training import load_checkpoint, next_token_loss, stream_loss, train

RECIPE = "recipes/instruct_small.py"
GRAMMAR_SEED = 2  # fresh sentences (pretraining used seed 1)


@dataclass(frozen=True)
class Recipe:
    """Every setting of both stages; the cards record them."""

    name: str
    block_size: int
    documents: int  # few-shot documents in the task stream
    grammar_sentences: int
    prose_batch: int
    grammar_batch: int
    task_batch: int
    steps: int
    lr: float
    min_lr: float
    warmup_steps: int
    sft_dialogues: int
    sft_batch: int
    sft_steps: int
    sft_lr: float
    sft_min_lr: float
    sft_warmup_steps: int
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    dropout: float = 0.0
    precision: str = "bf16"
    checkpoint_every: int = 100
    eval_n: int = 60  # prompts per task in the cards' evaluation
    seed: int = 0


SHIPPED = Recipe(
    name="instruct",
    block_size=256,
    documents=120_000,
    grammar_sentences=20_000,
    prose_batch=3,
    grammar_batch=1,
    task_batch=12,
    steps=2000,
    lr=1e-3,
    min_lr=1e-4,
    warmup_steps=50,
    sft_dialogues=25_000,
    sft_batch=32,
    sft_steps=600,
    sft_lr=5e-4,
    sft_min_lr=5e-5,
    sft_warmup_steps=20,
)

TINY = dataclasses.replace(
    SHIPPED,
    name="tiny",
    documents=500,
    grammar_sentences=500,
    steps=6,
    warmup_steps=1,
    sft_dialogues=64,
    sft_batch=8,
    sft_steps=4,
    sft_warmup_steps=1,
    checkpoint_every=3,
    eval_n=4,
)


# -------------------------------------------------------------------------- stage 1
def task_stream(tokenizer, recipe: Recipe) -> torch.Tensor:
    """The few-shot documents as one ``<|endoftext|>``-separated stream of ids."""
    rng = random.Random(f"documents-{recipe.seed}")
    return document_stream(tokenizer, [few_shot_document(rng) for _ in range(recipe.documents)])


def mixed_batches(
    streams: dict[str, torch.Tensor], recipe: Recipe
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches: ``prose_batch``, ``grammar_batch`` and ``task_batch`` random windows
    of ``block_size`` tokens of the three streams, in that order."""
    sizes = {
        "prose": recipe.prose_batch,
        "grammar": recipe.grammar_batch,
        "tasks": recipe.task_batch,
    }
    sources = [
        random_blocks(streams[name], recipe.block_size, size, seed=recipe.seed + i)
        for i, (name, size) in enumerate(sizes.items())
    ]
    for parts in zip(*sources, strict=True):
        yield torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


# -------------------------------------------------------------------------- stage 2
def sft_data(tokenizer, recipe: Recipe) -> list[tuple[list[int], list[int]]]:
    """The fine-tuning dialogues as ``(inputs, targets)`` pairs (assistant-only targets),
    those longer than the context left out."""
    rng = random.Random(f"dialogues-{recipe.seed}")
    pairs = []
    while len(pairs) < recipe.sft_dialogues:
        ids, mask = encode_dialogue(tokenizer, dialogue(rng))
        if len(ids) <= recipe.block_size + 1:
            pairs.append(sft_example(ids, mask))
    return pairs


def sft_batches(
    pairs: list[tuple[list[int], list[int]]], recipe: Recipe, pad_id: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless padded batches of ``sft_batch`` dialogues of similar lengths: each pass
    shuffles the dialogues, sorts groups of 16 batches by length, and shuffles the
    batches, so that little of a batch is padding."""
    rng = random.Random(f"sft-batches-{recipe.seed}")
    size = recipe.sft_batch
    while True:
        order = list(range(len(pairs)))
        rng.shuffle(order)
        batches = []
        for start in range(0, len(order) - size + 1, size * 16):
            group = sorted(order[start : start + size * 16], key=lambda i: len(pairs[i][0]))
            batches += [group[i : i + size] for i in range(0, len(group) - size + 1, size)]
        rng.shuffle(batches)
        for batch in batches:
            yield sft_batch([pairs[i] for i in batch], pad_id)


def sft_loss(model, batch) -> torch.Tensor:
    """The mean cross-entropy over the target tokens that are not ignored."""
    inputs, targets = batch
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


# ---------------------------------------------------------------------------- files
def write_model(model: GPT, tokenizer, out: Path, card: dict, dtype: torch.dtype) -> dict:
    """``model.pt`` (the state dict in ``dtype``), ``tokenizer.json`` and ``card.json``."""
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(dtype).clone() for k, v in model.state_dict().items()}
    torch.save(state, out / MODEL_FILE)
    tokenizer.save(out / TOKENIZER_FILE)
    card["files"] = {
        name: {"bytes": (out / name).stat().st_size, "sha256": sha256(out / name)}
        for name in (MODEL_FILE, TOKENIZER_FILE)
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    return card


def reload(model: GPT, dtype: torch.dtype) -> GPT:
    """The model as it will be loaded: weights rounded to ``dtype``, then float32, eval."""
    copy = GPT(model.config)
    copy.load_state_dict({k: v.to(dtype) for k, v in model.state_dict().items()})
    return copy.eval()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        help=f"folder for the two model folders (default: {WEIGHTS_DIR} for the shipped "
        "recipe, <work>/models for --tiny or --steps)",
    )
    parser.add_argument(
        "--work", type=Path, help="checkpoints and logs (default: <tmp>/llmcourse-instruct-<name>)"
    )
    parser.add_argument("--steps", type=int, help="stage-1 steps (default: the recipe's)")
    parser.add_argument("--sft-steps", type=int, help="stage-2 steps (default: the recipe's)")
    parser.add_argument("--tiny", action="store_true", help="a few steps, for a smoke run")
    parser.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the recipe; returns the two cards it wrote."""
    start = time.perf_counter()
    args = parse_args(argv)
    recipe = TINY if args.tiny else SHIPPED
    if args.steps is not None:
        recipe = dataclasses.replace(
            recipe, steps=args.steps, warmup_steps=min(recipe.warmup_steps, args.steps // 10)
        )
    if args.sft_steps is not None:
        recipe = dataclasses.replace(
            recipe,
            sft_steps=args.sft_steps,
            sft_warmup_steps=min(recipe.sft_warmup_steps, args.sft_steps // 10),
        )
    work = args.work or Path(tempfile.gettempdir()) / f"llmcourse-instruct-{recipe.name}"
    out = args.out or (WEIGHTS_DIR if recipe == SHIPPED else work / "models")
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    command = " ".join(["python", RECIPE, *(sys.argv[1:] if argv is None else argv)])

    base, tokenizer = load_pretrained("small")
    config = dataclasses.replace(base.config, block_size=recipe.block_size, dropout=recipe.dropout)
    prose = python_docs().train
    grammar = [
        grammar_text(s.tokens)
        for s in english_grammar().generate(recipe.grammar_sentences, seed=GRAMMAR_SEED)
    ]
    streams = {
        "prose": document_stream(tokenizer, prose),
        "grammar": document_stream(tokenizer, grammar),
        "tasks": task_stream(tokenizer, recipe),
    }
    eval_prose = document_stream(tokenizer, python_docs().validation)
    print({name: len(ids) for name, ids in streams.items()}, "tokens", flush=True)
    data_seconds = time.perf_counter() - start

    # Stage 1: continued pretraining on the few-shot mixture.
    torch.manual_seed(recipe.seed)
    model = GPT(config)
    model.load_state_dict(base.state_dict())
    checkpoint = work / "fewshot.pt"
    resumed_1 = int(load_checkpoint(checkpoint)["step"]) if checkpoint.exists() else 0
    t1 = time.perf_counter()
    history_1 = train(
        model,
        next_token_loss,
        mixed_batches(streams, recipe),
        recipe.steps,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        grad_clip=recipe.grad_clip,
        eval_fn=lambda m: stream_loss(m, eval_prose, 128),
        eval_every=max(recipe.steps // 10, 1),
        progress=not args.no_progress,
        desc="stage 1: few-shot mixture",
        schedule="cosine",
        warmup_steps=recipe.warmup_steps,
        min_lr=recipe.min_lr,
        checkpoint_path=checkpoint,
        checkpoint_every=recipe.checkpoint_every,
        resume=True,
        log_path=work / "fewshot.jsonl",
        precision=recipe.precision,
    )
    seconds_1 = time.perf_counter() - t1
    fewshot = reload(model, torch.bfloat16)

    # Stage 2: supervised fine-tuning on dialogues, loss on the assistant's tokens.
    pad = tokenizer.specials["<|pad|>"]
    pairs = sft_data(tokenizer, recipe)
    instruct = GPT(config)
    instruct.load_state_dict(model.state_dict())
    checkpoint = work / "instruct.pt"
    resumed_2 = int(load_checkpoint(checkpoint)["step"]) if checkpoint.exists() else 0
    t2 = time.perf_counter()
    history_2 = train(
        instruct,
        sft_loss,
        sft_batches(pairs, recipe, pad),
        recipe.sft_steps,
        lr=recipe.sft_lr,
        weight_decay=recipe.weight_decay,
        grad_clip=recipe.grad_clip,
        progress=not args.no_progress,
        desc="stage 2: supervised fine-tuning",
        schedule="cosine",
        warmup_steps=recipe.sft_warmup_steps,
        min_lr=recipe.sft_min_lr,
        checkpoint_path=checkpoint,
        checkpoint_every=recipe.checkpoint_every,
        resume=True,
        log_path=work / "instruct.jsonl",
        precision=recipe.precision,
    )
    seconds_2 = time.perf_counter() - t2
    instruct = reload(instruct, torch.float32)

    # Evaluation (float32, the weights as they are shipped) and the files.
    t3 = time.perf_counter()
    base_losses = validation_losses(base, tokenizer)
    metrics_1 = fewshot_card_metrics(fewshot, tokenizer, recipe.eval_n)
    metrics_2 = instruct_card_metrics(instruct, tokenizer, recipe.eval_n)
    eval_seconds = time.perf_counter() - t3
    common = {
        "format": CARD_FORMAT,
        "recipe": RECIPE,
        "git_revision": git_revision(),
        "config": asdict(config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer": {
            "from": "the shipped small model, unchanged",
            "specials": list(tokenizer.specials),
        },
        "software": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "command": command,
        },
    }
    settings = {k: v for k, v in asdict(recipe).items() if not k.startswith("sft_")}
    cards = {}
    cards["fewshot"] = {
        "name": "fewshot",
        "description": (
            "The shipped small GPT, its context doubled to 256 tokens, after continued "
            "pretraining on a mixture of prose, grammar sentences and few-shot documents of "
            "the course's training tasks (recipes/instruct_small.py, stage 1). A base model "
            "that learns in context; no chat template."
        ),
        **common,
        "data": {
            "format": (
                "every document preceded by <|endoftext|>; prompts should start with <|endoftext|>"
            ),
            "mixture": (
                f"every batch: {recipe.prose_batch} prose, {recipe.grammar_batch} grammar and "
                f"{recipe.task_batch} few-shot windows of {recipe.block_size} tokens"
            ),
            "few_shot_documents": {
                "source": (
                    "llmcourse.prompting.task_data.few_shot_document, training tasks and "
                    "inputs only"
                ),
                "documents": recipe.documents,
                "tokens": len(streams["tasks"]),
                "kinds": DOCUMENT_WEIGHTS,
            },
            "prose_tokens": len(streams["prose"]),
            "grammar": (
                f"english_grammar().generate({recipe.grammar_sentences}, seed={GRAMMAR_SEED})"
            ),
        },
        "training": {
            "init": "the shipped small model (load_pretrained('small'))",
            **settings,
            "batch_size": recipe.prose_batch + recipe.grammar_batch + recipe.task_batch,
            "final_train_loss": history_1.train_loss[-1],
            "prose_validation_curve": {
                "steps": history_1.eval_steps,
                "loss": [round(x, 4) for x in history_1.eval_loss],
            },
            "resumed_from_step": resumed_1,
        },
        "evaluation": {
            **metrics_1,
            "loss_of_small": base_losses,
        },
        "weights_dtype": "bfloat16 (loaded into float32 parameters)",
        "usage": "model, tokenizer = llmcourse.models.load_pretrained('fewshot')",
        "wall_time_seconds": {"data": round(data_seconds, 1), "training": round(seconds_1, 1)},
    }
    cards["instruct"] = {
        "name": "instruct",
        "description": (
            "The few-shot model after supervised fine-tuning on dialogues in the chat "
            "template, with the loss on the assistant's tokens only (recipes/instruct_small.py, "
            "stage 2). Chapter 12 starts from it."
        ),
        **common,
        "chat_template": {
            "function": "llmcourse.prompting.chat.format_dialogue / encode_dialogue",
            "layout": (
                "<|endoftext|>, then per message its role token (<|system|>, <|user|>, "
                "<|assistant|>) and its content as plain text; every assistant message "
                "is closed by <|endoftext|>, where generation stops"
            ),
            "example": format_dialogue(
                [
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": "Reverse the letters.\nd o g"},
                    {"role": "assistant", "content": "g o d"},
                ]
            ),
            "loss_mask": "assistant contents and their closing <|endoftext|> only",
        },
        "data": {
            "source": "llmcourse.prompting.task_data.dialogue: training tasks and inputs, "
            "the first two phrasings of each instruction, passages and questions about seen "
            "or invented animals",
            "dialogues": len(pairs),
            "assistant_tokens": sum(sum(t != -100 for t in y) for _, y in pairs),
        },
        "training": {
            "init": "the few-shot model in float32 (before its bfloat16 rounding)",
            "steps": recipe.sft_steps,
            "batch_size": recipe.sft_batch,
            "lr": recipe.sft_lr,
            "min_lr": recipe.sft_min_lr,
            "warmup_steps": recipe.sft_warmup_steps,
            "schedule": "linear warmup, then cosine decay",
            "weight_decay": recipe.weight_decay,
            "grad_clip": recipe.grad_clip,
            "precision": f"{recipe.precision} autocast, fp32 weights",
            "seed": recipe.seed,
            "final_train_loss": history_2.train_loss[-1],
            "resumed_from_step": resumed_2,
        },
        "evaluation": metrics_2,
        "weights_dtype": "float32",
        "usage": "model, tokenizer = llmcourse.models.load_pretrained('instruct')",
        "wall_time_seconds": {"training": round(seconds_2, 1)},
    }
    for name, model_, dtype in (
        ("fewshot", fewshot, torch.bfloat16),
        ("instruct", instruct, torch.float32),
    ):
        card = cards[name]
        card["wall_time_seconds"].update(
            {
                "evaluation_of_both": round(eval_seconds, 1),
                "recipe_total": round(time.perf_counter() - start, 1),
                "torch_threads": torch.get_num_threads(),
            }
        )
        write_model(model_, tokenizer, out / name, card, dtype)
    print(json.dumps({n: c["evaluation"] for n, c in cards.items()}, indent=1))
    print(f"wrote {out}/fewshot and {out}/instruct in {time.perf_counter() - start:.0f} s")
    return cards


if __name__ == "__main__":
    main()
