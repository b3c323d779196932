"""Training data made from the task suite: few-shot documents and chat dialogues.

A model of a million parameters pretrained on prose does not learn in context the way
GPT-3 does: nothing in its training text looks like a prompt with demonstrations. The
course's models therefore continue pretraining on a mixture that includes **few-shot
documents** (:func:`few_shot_document`): an optional instruction, then solved examples of
one task in one format, so that predicting each answer from the examples before it *is*
in-context learning (random mappings, which only the examples can tell, get documents of
their own); random sequences written twice, the plainest lesson in copying from
the context; arithmetic with direct answers, chains of thought, and the
zero-shot trigger "Let's think step by step."; facts of the knowledge base's seen
animals, and passages followed by a question, whose answer is in the passage; and
lists of instructions (the seeds of self-instruct).

**Dialogues** (:func:`dialogue`) are the supervised fine-tuning data: one to three user
requests (an instruction with its input, a question about a passage, or a question
about a seen animal) with the assistant's answers, in the chat template of
:mod:`llmcourse.prompting.chat`.

Everything draws from the training split only: training tasks
(:data:`~llmcourse.data.tasks.TRAIN_TASKS`), training inputs, the first two phrasings
of each instruction, and either the seen animals of the knowledge base or animals
invented on the spot (never one of the knowledge base's names).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache

from llmcourse.data.knowledge import (
    ATTRIBUTES,
    FOODS,
    KINDS,
    Entity,
    knowledge_base,
    passage,
    question,
    split_entities,
    towns,
)
from llmcourse.data.lexicon import invented_words
from llmcourse.data.tasks import (
    COLOURS,
    DIGITS,
    GRAMMISH_NOUNS,
    LETTERS,
    TRAIN_TASKS,
    get_task,
    kind_of,
)
from llmcourse.prompting.chat import task_message
from llmcourse.prompting.fewshot import STEP_BY_STEP, demonstration

SYSTEM_PROMPTS = ("You are a helpful assistant.", "Answer briefly.", "Be exact.")


@cache
def train_kinds() -> dict[str, tuple[str, ...]]:
    """The training tasks grouped by kind (:func:`~llmcourse.data.tasks.kind_of`)."""
    kinds: dict[str, list[str]] = {}
    for name in TRAIN_TASKS:
        kinds.setdefault(kind_of(name), []).append(name)
    return {kind: tuple(names) for kind, names in kinds.items()}


def random_task(rng: random.Random, kinds: Sequence[str] | None = None) -> str:
    """A training task: a kind drawn uniformly (of ``kinds``, default all), then a task of
    that kind."""
    table = train_kinds()
    return rng.choice(table[rng.choice(sorted(table) if kinds is None else list(kinds))])


@cache
def _kb_names() -> frozenset[str]:
    return frozenset(e.name for e in knowledge_base())


def invented_entity(rng: random.Random) -> Entity:
    """An animal invented on the spot, whose name is not in the knowledge base."""
    while True:
        name = invented_words(1, rng)[0]
        if name not in _kb_names():
            return Entity(
                name, rng.choice(KINDS), rng.choice(COLOURS), rng.choice(towns()), rng.choice(FOODS)
            )


def _entities(rng: random.Random, n: int, seen_share: float = 0.5) -> list[Entity]:
    seen = split_entities()[0]
    return [
        rng.choice(seen) if rng.random() < seen_share else invented_entity(rng) for _ in range(n)
    ]


def reading_example(rng: random.Random, n_passages: int) -> tuple[str, str, str]:
    """``(passages, question, answer)``: ``n_passages`` passages, one of which answers the
    question (about a seen or an invented animal)."""
    entities = _entities(rng, n_passages)
    target = rng.choice(entities)
    text, answer = question(target, rng.choice(ATTRIBUTES))
    return " ".join(passage(e) for e in entities), text, answer


# ------------------------------------------------------------------ few-shot documents
def _episode_document(rng: random.Random, kinds: Sequence[str], most: int) -> str:
    task = get_task(random_task(rng, kinds))
    fmt = rng.choice(("qa", "arrow"))
    examples = task.episode(rng, rng.randint(2, most), phrasing=rng.randint(0, 1))
    head = f"{examples[0].instruction}\n" if rng.random() < 0.5 else ""
    return head + "".join(demonstration(e, fmt) for e in examples)


def _task_document(rng: random.Random) -> str:
    return _episode_document(
        rng, [k for k in train_kinds() if k not in ("arithmetic", "mapping")], 10
    )


def _mapping_document(rng: random.Random) -> str:
    return _episode_document(rng, ["mapping"], 16)


def _arithmetic_document(rng: random.Random) -> str:
    task = get_task("arithmetic")
    style = rng.choice(("direct", "chain", "trigger"))
    if style == "direct":
        examples = task.episode(rng, rng.randint(2, 6))
        return "".join(demonstration(e, "qa") for e in examples)
    if style == "chain":
        examples = task.episode(rng, rng.randint(1, 4))
        return "".join(demonstration(e, "qa", chain=True) for e in examples)
    example = task.example(rng)
    return f"Q: {example.input}\nA: {STEP_BY_STEP} {example.chain}\n"


def _knowledge_document(rng: random.Random) -> str:
    style = rng.choice(("passages", "closed", "reading"))
    if style == "passages":
        return " ".join(passage(e) for e in rng.sample(split_entities()[0], rng.randint(1, 4)))
    if style == "closed":
        pairs = [
            question(rng.choice(split_entities()[0]), rng.choice(ATTRIBUTES))
            for _ in range(rng.randint(2, 6))
        ]
        return "".join(f"Q: {q}\nA: {a}\n" for q, a in pairs)
    passages, text, answer = reading_example(rng, rng.randint(1, 3))
    return f"{passages}\nQ: {text}\nA: {answer}\n"


def _instruction_list(rng: random.Random) -> str:
    names = [
        random_task(rng, [k for k in train_kinds() if k != "mapping"])
        for _ in range(rng.randint(3, 8))
    ]
    lines = [get_task(n).instruction(rng.randint(0, 1)) for n in names]
    return "Instructions:\n" + "".join(f"- {line}\n" for line in lines)


def _repeat_document(rng: random.Random) -> str:
    pool = LETTERS + DIGITS + COLOURS + GRAMMISH_NOUNS
    sequence = " ".join(rng.choice(pool) for _ in range(rng.randint(8, 40)))
    return f"{sequence}\n{sequence}\n"


DOCUMENT_KINDS = {
    "repeat": _repeat_document,
    "task": _task_document,
    "mapping": _mapping_document,
    "arithmetic": _arithmetic_document,
    "knowledge": _knowledge_document,
    "instructions": _instruction_list,
}
DOCUMENT_WEIGHTS = {
    "repeat": 0.08,
    "task": 0.45,
    "mapping": 0.12,
    "arithmetic": 0.2,
    "knowledge": 0.11,
    "instructions": 0.04,
}


def few_shot_document(rng: random.Random, kind: str | None = None) -> str:
    """One document of the few-shot mixture (see the module's text), of ``kind`` (one of
    :data:`DOCUMENT_KINDS`) or of a kind drawn with :data:`DOCUMENT_WEIGHTS`."""
    if kind is None:
        kind = rng.choices(list(DOCUMENT_WEIGHTS), weights=list(DOCUMENT_WEIGHTS.values()))[0]
    if kind not in DOCUMENT_KINDS:
        raise ValueError(f"kind must be one of {tuple(DOCUMENT_KINDS)}, got {kind!r}")
    return DOCUMENT_KINDS[kind](rng)


# ------------------------------------------------------------------------- dialogues
def _turn(rng: random.Random) -> tuple[str, str]:
    style = rng.choices(("task", "reading", "closed"), weights=(0.8, 0.12, 0.08))[0]
    if style == "reading":
        passages, text, answer = reading_example(rng, rng.randint(1, 3))
        return f"{passages}\n{text}", answer
    if style == "closed":
        return question(rng.choice(split_entities()[0]), rng.choice(ATTRIBUTES))
    task = get_task(random_task(rng, [k for k in train_kinds() if k != "mapping"]))
    example = task.example(rng, phrasing=rng.randint(0, 1))
    return task_message(example), example.chain if example.steps else example.output


def dialogue(rng: random.Random, max_turns: int = 3) -> list[dict[str, str]]:
    """A dialogue of 1 to ``max_turns`` exchanges, with a system message a quarter of the
    time (see the module's text)."""
    messages = []
    if rng.random() < 0.25:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    for _ in range(rng.randint(1, max_turns)):
        user, assistant = _turn(rng)
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages
