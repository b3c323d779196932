"""The course's small pretrained model: its shipped weights, tokenizer, card and evaluation.

Chapters from pretraining on (instruction tuning, RLHF, PEFT, compression) start from a
decoder-only Transformer (:class:`llmcourse.transformer.GPT`) that the package ships, so
that no chapter needs a long pretraining run. ``recipes/pretrain_small.py`` trains it
from scratch on the course corpus: the prose of the Python documentation
(:func:`llmcourse.data.python_docs`, train split) mixed with sentences of the course
grammar (:func:`llmcourse.data.english_grammar`), tokenized by a byte-level BPE
(:class:`llmcourse.bpe.BPETokenizer`) trained on the same text.

Each model is a folder ``llmcourse/pretrained_weights/<name>/`` of three files:

- ``model.pt``: the state dict, float32 tensors only, read with
  ``torch.load(..., weights_only=True)`` (no pickled objects, no code);
- ``tokenizer.json``: the tokenizer, as written by :meth:`BPETokenizer.save`;
- ``card.json``: the model card: the configuration, the data and its mixture, the
  training settings, the documented validation losses and baselines, the measured
  training time, and the SHA-256 of the two other files, checked at every load.

**Text format.** The training text is a stream of documents (a prose paragraph, or one
grammar sentence written by :func:`grammar_text`), each preceded by ``<|endoftext|>``:
``<|endoftext|>doc 1<|endoftext|>doc 2...`` (:func:`document_stream`). A prompt for the
model should therefore start with ``<|endoftext|>``. The tokenizer reserves special
tokens for later chapters (:data:`SPECIAL_TOKENS`): padding, masked-LM and span
corruption (``<|mask|>``, the sentinels ``<|extra_0|>`` ...), and chat turns
(``<|system|>``, ``<|user|>``, ``<|assistant|>``). Pretraining never sees them except
``<|endoftext|>``, so their embeddings are untrained until a chapter fine-tunes them.

**Documented evaluation** (:func:`evaluation_documents`, :func:`validation_losses`): the mean
next-token cross-entropy, in nats, on two held-out sets: the prose validation split
(whole) and :data:`EVAL_GRAMMAR_SENTENCES` grammar sentences drawn with seed
:data:`EVAL_GRAMMAR_SEED` (no training sentence is drawn with that seed). Each set is
one stream cut into consecutive windows of ``block_size`` predictions
(:func:`stream_loss`). Every grammar word is one token, so on grammar text the loss
per token cannot go below the grammar's exact entropy per token
(:meth:`llmcourse.data.Grammar.entropy_per_token`), up to the few tokens predicted
at the start of a window without their sentence's beginning.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.bpe import BPETokenizer
from llmcourse.data.grammar import english_grammar
from llmcourse.data.prose import python_docs
from llmcourse.transformer import GPT, TransformerConfig

EOT = "<|endoftext|>"
SPECIAL_TOKENS: tuple[str, ...] = (
    EOT,
    "<|pad|>",
    "<|mask|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    *(f"<|extra_{i}|>" for i in range(8)),
)
"""The reserved special tokens, in id order (they take the last ids of the vocabulary)."""

WEIGHTS_DIR = Path(__file__).resolve().parent / "pretrained_weights"
MODEL_FILE, TOKENIZER_FILE, CARD_FILE = "model.pt", "tokenizer.json", "card.json"
CARD_FORMAT = 1
EVAL_GRAMMAR_SEED = 1_000_000
EVAL_GRAMMAR_SENTENCES = 500
RECIPE = "recipes/pretrain_small.py"


# ---------------------------------------------------------------------- text and data
def grammar_text(words: Sequence[str]) -> str:
    """A grammar sentence as text: its words joined by single spaces.

    ``["the", "cat", "sleeps", "."]`` -> ``"the cat sleeps ."`` (the full stop is a word
    of the grammar, so it keeps its space and stays one token).
    """
    if isinstance(words, str):
        raise TypeError("words must be a sequence of words, not a str")
    if not words:
        raise ValueError("a grammar sentence has at least one word")
    return " ".join(words)


def document_stream(tokenizer: BPETokenizer, documents: Sequence[str]) -> Tensor:
    """The ids of ``<|endoftext|>doc 1<|endoftext|>doc 2...``, as one stream.

    The documents are encoded with ``specials=False``: a document that contains the text
    ``<|endoftext|>`` gets ordinary tokens for it, so data cannot inject special tokens.

    Returns:
        ``(n,)`` long, ``n = len(documents) + sum of the documents' token counts``.
    """
    if EOT not in tokenizer.specials:
        raise ValueError(f"the tokenizer has no {EOT} token")
    if isinstance(documents, str) or not documents:
        raise ValueError("documents must be a non-empty sequence of strings")
    eot = tokenizer.specials[EOT]
    ids: list[int] = []
    for document in documents:
        ids.append(eot)
        ids.extend(tokenizer.encode(document, specials=False))
    return torch.tensor(ids, dtype=torch.long)


def evaluation_documents() -> dict[str, list[str]]:
    """The fixed evaluation sets: ``"prose"`` (the validation paragraphs of
    :func:`python_docs`) and ``"grammar"`` (:data:`EVAL_GRAMMAR_SENTENCES` sentences
    drawn with seed :data:`EVAL_GRAMMAR_SEED`)."""
    grammar = english_grammar().generate(EVAL_GRAMMAR_SENTENCES, seed=EVAL_GRAMMAR_SEED)
    return {
        "prose": python_docs().validation,
        "grammar": [grammar_text(sample.tokens) for sample in grammar],
    }


# ------------------------------------------------------------------------- evaluation
@torch.no_grad()
def stream_loss(model: nn.Module, ids: Tensor, block_size: int, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy (nats) of ``model`` over a stream of ids.

    The stream is cut into consecutive windows of ``block_size`` predictions: window
    ``k`` reads ``ids[k T : (k + 1) T]`` and predicts ``ids[k T + 1 : (k + 1) T + 1]``
    (the last window may be shorter). Every id but the first is predicted exactly once,
    from the ids before it in its window. Runs in eval mode; the mode is restored.

    Args:
        model: ``model(idx (batch, time)) -> logits (batch, time, vocab)``.
        ids: ``(n,)`` long, ``n >= 2``.
        block_size: the window length ``T``, at most the model's context.
        batch_size: windows per forward pass (the result does not depend on it).
    """
    if ids.ndim != 1 or ids.dtype != torch.long or len(ids) < 2:
        raise ValueError(
            f"ids must be a 1-D long tensor of at least 2 ids, got {ids.dtype} {tuple(ids.shape)}"
        )
    for name, value in (("block_size", block_size), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    n_full = (len(ids) - 1) // block_size
    starts = torch.arange(n_full) * block_size
    offsets = torch.arange(block_size + 1)
    windows = [ids[starts + offsets[:, None]].T] if n_full else []  # (n_full, T + 1)
    tail = ids[n_full * block_size :]
    if len(tail) >= 2:
        windows.append(tail[None])
    was_training = model.training
    model.eval()
    try:
        total = 0.0
        for group in windows:
            for batch in group.split(batch_size):
                logits = model(batch[:, :-1]).float()
                loss = F.cross_entropy(
                    logits.flatten(0, 1), batch[:, 1:].flatten(), reduction="sum"
                )
                total += loss.item()
    finally:
        model.train(was_training)
    return total / (len(ids) - 1)


def validation_losses(model: GPT, tokenizer: BPETokenizer) -> dict[str, float]:
    """The documented validation losses (nats per token) of a model: ``{"prose": ...,
    "grammar": ...}`` on :func:`evaluation_documents`, windows of ``block_size``."""
    block_size = model.config.block_size
    return {
        name: stream_loss(model, document_stream(tokenizer, documents), block_size)
        for name, documents in evaluation_documents().items()
    }


# --------------------------------------------------------------------------- loading
def model_directory(name: str = "small", directory: str | os.PathLike | None = None) -> Path:
    """The folder of a model's files: ``directory`` if given, else the shipped ``name``."""
    if directory is not None:
        path = Path(directory)
        if not path.is_dir():
            raise FileNotFoundError(f"no pretrained model folder at {str(path)!r}")
        return path
    available = (
        sorted(p.name for p in WEIGHTS_DIR.iterdir() if p.is_dir()) if WEIGHTS_DIR.is_dir() else []
    )
    if name not in available:
        raise ValueError(f"unknown pretrained model {name!r}; the package ships {available}")
    return WEIGHTS_DIR / name


def _required(folder: Path, filename: str) -> Path:
    path = folder / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} is missing; reinstall llmcourse or rebuild the model with "
            f"`python {RECIPE} --out {folder}`"
        )
    return path


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_card(name: str = "small", directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """The model card (``card.json``) of a shipped model, or of the model in ``directory``.

    Its main keys: ``config`` (the :class:`TransformerConfig` fields), ``parameters``,
    ``tokenizer``, ``data`` (sources and mixture), ``training`` (settings, seed, the prose
    validation curve), ``evaluation`` (the documented losses, the grammar's floor and two
    baselines), ``wall_time_seconds``, ``files`` (size and SHA-256 of ``model.pt`` and
    ``tokenizer.json``) and ``software``.
    """
    path = _required(model_directory(name, directory), CARD_FILE)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{str(path)!r} is corrupt: it is not JSON ({error})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ValueError(f"{str(path)!r} is not a model card of format {CARD_FORMAT}")
    return card


def _checked(folder: Path, filename: str, card: dict[str, Any]) -> Path:
    """The path of ``filename`` after checking its SHA-256 against the card."""
    path = _required(folder, filename)
    expected = card["files"][filename]["sha256"]
    if sha256(path) != expected:
        raise ValueError(
            f"{str(path)!r} is corrupt or does not belong to this card: its SHA-256 differs "
            f"from the card's; reinstall llmcourse or rebuild it with `python {RECIPE}`"
        )
    return path


def load_pretrained(
    name: str = "small", directory: str | os.PathLike | None = None
) -> tuple[GPT, BPETokenizer]:
    """The pretrained model, in eval mode on the CPU, and its tokenizer.

    Args:
        name: a model the package ships (``"small"``).
        directory: load the three files from this folder instead (e.g. the ``--out`` of
            the recipe).

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file is corrupt (its SHA-256 differs from the card's) or the
            files disagree with each other.

    Example:
        >>> model, tokenizer = load_pretrained()
        >>> prompt = torch.tensor([tokenizer.encode("<|endoftext|>the cat")])
        >>> model(prompt).shape  # (batch, time, vocab)
        torch.Size([1, 3, 2048])
    """
    folder = model_directory(name, directory)
    card = model_card(name, folder)
    tokenizer = BPETokenizer.load(_checked(folder, TOKENIZER_FILE, card))
    config = TransformerConfig(**card["config"])
    if (
        len(tokenizer) != config.vocab_size
        or list(tokenizer.specials) != card["tokenizer"]["specials"]
    ):
        raise ValueError(
            f"the tokenizer in {str(folder)!r} ({len(tokenizer)} tokens) does not match the "
            f"card (vocab_size {config.vocab_size}, specials {card['tokenizer']['specials']})"
        )
    state = torch.load(_checked(folder, MODEL_FILE, card), map_location="cpu", weights_only=True)
    model = GPT(config)
    model.load_state_dict(state)
    return model.eval(), tokenizer


def unigram_loss(train_ids: Tensor, eval_ids: Tensor, vocab_size: int) -> float:
    """A baseline: the cross-entropy (nats per token) of ``eval_ids[1:]`` under the
    add-one smoothed unigram distribution of ``train_ids`` (both ``(n,)`` long)."""
    counts = torch.bincount(train_ids, minlength=vocab_size).double() + 1.0
    log_probs = counts.log() - math.log(counts.sum().item())
    return -log_probs[eval_ids[1:]].mean().item()
