"""The chat template of the course's instruction-tuned model, and its loss mask.

A **dialogue** is a list of messages ``{"role": ..., "content": ...}``: an optional
``"system"`` message first, then ``"user"`` and ``"assistant"`` messages alternating,
starting with the user. The template writes it with the tokenizer's reserved tokens,
one role token before each message and ``<|endoftext|>`` after each assistant message
(the token at which a reply stops), after the ``<|endoftext|>`` that starts every
document of the course's models::

    <|endoftext|><|system|>Be brief.<|user|>Reverse the letters.
    d o g<|assistant|>g o d<|endoftext|><|user|>Give the plural.
    cat<|assistant|>cats<|endoftext|>

(one line in the model's input; the line breaks after ``Reverse the letters.`` and
``Give the plural.`` are part of the user's messages). Role tokens are special tokens;
the contents are encoded as plain text, with no special token allowed
(:meth:`~llmcourse.text.bpe.BPETokenizer.encode`), so a user who types
``<|assistant|>`` gets those characters, not the token: no message can forge a turn.

**Loss mask.** Supervised fine-tuning trains the model to write the assistant's
messages, not the user's: the mask is True at every token of every assistant message
and at the ``<|endoftext|>`` that closes it, and False at the system and user messages
and at the role tokens. :func:`sft_example` turns a dialogue into next-token inputs and
targets whose targets are :data:`~llmcourse.data.batching.IGNORE_INDEX` wherever the
mask is False, so that ``F.cross_entropy`` skips them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from llmcourse.checks import check_int
from llmcourse.data.batching import IGNORE_INDEX
from llmcourse.data.tasks import Example
from llmcourse.text.bpe import BPETokenizer

ROLES = ("system", "user", "assistant")
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
END = "<|endoftext|>"
"""Starts every dialogue, and ends every assistant message."""

Message = Mapping[str, str]


def check_dialogue(messages: Sequence[Message], *, reply_next: bool = False) -> None:
    """Raise a ValueError unless ``messages`` is a well-formed dialogue.

    Well formed: a non-empty sequence of mappings with a ``"role"`` in :data:`ROLES` and
    a string ``"content"``; a system message only first; then user and assistant
    alternating, starting with the user. With ``reply_next``, the last message must be
    the user's (the assistant replies next).
    """
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise ValueError("a dialogue must be a non-empty list of messages")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or set(message) != {"role", "content"}:
            raise ValueError(
                f"message {i} must be a dict with 'role' and 'content', got {message!r}"
            )
        if message["role"] not in ROLES:
            raise ValueError(f"message {i} has role {message['role']!r}; roles are {ROLES}")
        if not isinstance(message["content"], str):
            raise ValueError(f"message {i}: content must be a str")
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    for i, message in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            index = i + len(messages) - len(turns)
            raise ValueError(
                f"message {index} is from {message['role']!r} but the dialogue expects "
                f"{expected!r}: after an optional system message, user and assistant "
                "messages alternate, starting with the user"
            )
    if not turns:
        raise ValueError("a dialogue needs at least one user message")
    if reply_next and turns[-1]["role"] != "user":
        raise ValueError("the last message must be the user's for the assistant to reply")


def format_dialogue(messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
    """The dialogue as the model reads it, in text (for display). With
    ``add_generation_prompt``, the text ends with ``<|assistant|>``: the model's turn."""
    check_dialogue(messages, reply_next=add_generation_prompt)
    parts = [END]
    for message in messages:
        parts += [ROLE_TOKENS[message["role"]], message["content"]]
        if message["role"] == "assistant":
            parts.append(END)
    if add_generation_prompt:
        parts.append(ROLE_TOKENS["assistant"])
    return "".join(parts)


def _special(specials: Mapping[str, int], token: str) -> int:
    if token not in specials:
        raise ValueError(f"the tokenizer has no {token} token; the chat template needs it")
    return specials[token]


def dialogue_ids(
    pieces: Sequence[tuple[str, Sequence[int]]],
    specials: Mapping[str, int],
    add_generation_prompt: bool = False,
) -> tuple[list[int], list[bool]]:
    """The chat template on contents already encoded: ``pieces`` are ``(role, content
    ids)`` in the dialogue's order, ``specials`` maps ``<|endoftext|>`` and the role tokens
    to their ids. Returns ``(ids, mask)`` as :func:`encode_dialogue` does."""
    check_dialogue(
        [{"role": role, "content": ""} for role, _ in pieces], reply_next=add_generation_prompt
    )
    end = _special(specials, END)
    ids, mask = [end], [False]
    for role, content in pieces:
        ids += [_special(specials, ROLE_TOKENS[role]), *content]
        assistant = role == "assistant"
        mask += [False] + [assistant] * len(content)
        if assistant:
            ids.append(end)
            mask.append(True)
    if add_generation_prompt:
        ids.append(_special(specials, ROLE_TOKENS["assistant"]))
        mask.append(False)
    return ids, mask


def encode_dialogue(
    tokenizer: BPETokenizer, messages: Sequence[Message], add_generation_prompt: bool = False
) -> tuple[list[int], list[bool]]:
    """Token ids of the dialogue in the chat template, and the assistant mask.

    Returns:
        ``(ids, mask)``, two lists of the same length: ``mask[t]`` is True when token ``t``
        belongs to an assistant message or is the ``<|endoftext|>`` that closes one.
        The ids decode to :func:`format_dialogue`'s text.
    """
    check_dialogue(messages, reply_next=add_generation_prompt)
    # The contents are plain text: no special token can come from a message.
    pieces = [(m["role"], tokenizer.encode(m["content"])) for m in messages]
    return dialogue_ids(pieces, tokenizer.specials, add_generation_prompt)


def sft_example(
    ids: Sequence[int], mask: Sequence[bool], assistant_only: bool = True
) -> tuple[list[int], list[int]]:
    """Next-token ``(inputs, targets)`` of one dialogue, each one token shorter than
    ``ids``: ``targets[t] = ids[t + 1]`` where ``mask[t + 1]`` (or everywhere but the
    first token when ``assistant_only`` is False), else :data:`IGNORE_INDEX`."""
    if len(ids) != len(mask) or len(ids) < 2:
        raise ValueError(
            f"ids and mask must have the same length >= 2, got {len(ids)} and {len(mask)}"
        )
    targets = [
        token if (keep or not assistant_only) else IGNORE_INDEX
        for token, keep in zip(ids[1:], mask[1:], strict=True)
    ]
    return list(ids[:-1]), targets


def sft_batch(
    examples: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int, length: int | None = None
) -> tuple[Tensor, Tensor]:
    """Right-pad ``(inputs, targets)`` pairs into ``(batch, T)`` long tensors; the
    padding's targets are :data:`IGNORE_INDEX`. ``T`` is the longest pair, or ``length``
    (which must fit every pair)."""
    if not examples:
        raise ValueError("examples is empty")
    longest = max(len(inputs) for inputs, _ in examples)
    width = longest if length is None else check_int("length", length)
    if width < longest:
        raise ValueError(f"length {width} is shorter than the longest example ({longest})")
    inputs = torch.full((len(examples), width), pad_id, dtype=torch.long)
    targets = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        if len(x) != len(y):
            raise ValueError(f"example {row}: inputs and targets differ in length")
        inputs[row, : len(x)] = torch.as_tensor(x, dtype=torch.long)
        targets[row, : len(y)] = torch.as_tensor(y, dtype=torch.long)
    return inputs, targets


def task_message(example: Example, phrasing: str | None = None) -> str:
    """The user's message for a task example: its instruction (or ``phrasing``), a line
    break and its input: ``"Reverse the letters.\\nd o g"``."""
    return f"{example.instruction if phrasing is None else phrasing}\n{example.input}"


def task_dialogue(
    examples: Sequence[Example], system: str | None = None, chain: bool = False
) -> list[dict[str, str]]:
    """A dialogue with one user turn per example and its answer as the assistant's turn
    (its :attr:`~llmcourse.data.tasks.Example.chain` when ``chain`` and it has steps)."""
    messages = [] if system is None else [{"role": "system", "content": system}]
    for example in examples:
        answer = example.chain if chain and example.steps else example.output
        messages += [
            {"role": "user", "content": task_message(example)},
            {"role": "assistant", "content": answer},
        ]
    return messages


def reply_text(tokenizer: BPETokenizer, ids: Sequence[int]) -> str:
    """The text of generated ids up to (without) the ``<|endoftext|>`` that ends a reply."""
    end = _special(tokenizer.specials, END)
    ids = list(ids)
    return tokenizer.decode(ids[: ids.index(end)] if end in ids else ids)
