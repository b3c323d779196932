"""The course's small pretrained model: its shipped weights, tokenizer and card.

Chapters from pretraining on (instruction tuning, RLHF, PEFT, compression) start from a
decoder-only Transformer (:class:`llmcourse.models.GPT`) that the package ships, so
that no chapter needs a long pretraining run. ``recipes/pretrain_small.py`` trains it
from scratch on the course corpus: the prose of the Python documentation
(:func:`llmcourse.data.python_docs`, train split) mixed with sentences of the course
grammar (:func:`llmcourse.data.english_grammar`), written as documents joined by
``<|endoftext|>`` (:mod:`llmcourse.data.documents`) and tokenized by a byte-level BPE
(:class:`llmcourse.text.BPETokenizer`) trained on the same text. Pretraining never
sees the reserved special tokens except ``<|endoftext|>``, so their embeddings are
untrained until a chapter fine-tunes them.

Each model is a folder ``llmcourse/models/weights/<name>/`` of three files:

- ``model.pt``: the state dict, float32 tensors only, read with
  ``torch.load(..., weights_only=True)`` (no pickled objects, no code);
- ``tokenizer.json``: the tokenizer, as written by :meth:`BPETokenizer.save`;
- ``card.json``: the model card: the configuration, the data and its mixture, the
  training settings, the documented validation losses and baselines, the measured
  training time, and the SHA-256 of the two other files, checked at every load.

**Documented evaluation** (:func:`validation_losses`): the mean next-token
cross-entropy, in nats, on the two held-out sets of
:func:`~llmcourse.data.documents.evaluation_documents`, each one stream cut into
consecutive windows of ``block_size`` predictions
(:func:`~llmcourse.training.evaluate.stream_loss`). Every grammar word is one token, so
on grammar text the loss per token cannot go below the grammar's exact entropy per
token (:meth:`llmcourse.data.Grammar.entropy_per_token`), up to the few tokens
predicted at the start of a window without their sentence's beginning.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from llmcourse.data.documents import document_stream, evaluation_documents
from llmcourse.models.gpt import GPT
from llmcourse.modules.transformer import TransformerConfig
from llmcourse.text.bpe import BPETokenizer
from llmcourse.training.evaluate import stream_loss

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MODEL_FILE, TOKENIZER_FILE, CARD_FILE = "model.pt", "tokenizer.json", "card.json"
CARD_FORMAT = 1
RECIPE = "recipes/pretrain_small.py"


def validation_losses(model: GPT, tokenizer: BPETokenizer) -> dict[str, float]:
    """The documented validation losses (nats per token) of a model: ``{"prose": ...,
    "grammar": ...}`` on :func:`evaluation_documents`, windows of ``block_size``."""
    block_size = model.config.block_size
    return {
        name: stream_loss(model, document_stream(tokenizer, documents), block_size)
        for name, documents in evaluation_documents().items()
    }


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


def _required(folder: Path, filename: str, recipe: str = RECIPE) -> Path:
    path = folder / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} is missing; reinstall llmcourse or rebuild the model with "
            f"`python {recipe} --out {folder}`"
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
    recipe = card.get("recipe", RECIPE)  # the card of a model made by another recipe names it
    path = _required(folder, filename, recipe)
    expected = card["files"][filename]["sha256"]
    if sha256(path) != expected:
        raise ValueError(
            f"{str(path)!r} is corrupt or does not belong to this card: its SHA-256 differs "
            f"from the card's; reinstall llmcourse or rebuild it with `python {recipe}`"
        )
    return path


def load_pretrained(
    name: str = "small", directory: str | os.PathLike | None = None
) -> tuple[GPT, BPETokenizer]:
    """The pretrained model, in eval mode on the CPU, and its tokenizer.

    Args:
        name: a model the package ships: ``"small"``, or ``"fewshot"`` and ``"instruct"``
            (Chapter 11, ``recipes/instruct_small.py``; their cards name their recipe).
        directory: load the three files from this folder instead (e.g. the ``--out`` of
            the recipe).

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file is corrupt (its SHA-256 differs from the card's) or the
            files disagree with each other.

    Example:
        >>> model, tokenizer = load_pretrained()
        >>> prompt = torch.tensor([tokenizer.encode("<|endoftext|>the cat", allowed_special="all")])
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
