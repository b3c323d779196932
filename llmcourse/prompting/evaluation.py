"""Accuracy of a model on the task suite: few-shot prompts, chains of thought, and chat.

Every function draws its examples from a seeded ``random.Random``, from the test split
of inputs (:func:`~llmcourse.data.tasks.split_of`), so the same call gives the same
number; the model cards of the course's few-shot and instruction-tuned models document
these numbers, and their tests recompute them.

- :func:`few_shot_accuracy` -- greedy exact match after a few-shot prompt, scored in one
  forward pass (:func:`~llmcourse.prompting.scoring.score_completions`);
- :func:`chain_accuracy` -- the final answers of greedy (or sampled) chains of thought;
- :func:`chat_accuracy` -- greedy exact match of the assistant's reply in the chat
  template;
- :func:`reading_accuracy` -- questions about the knowledge base's animals, closed-book
  or with passages in the prompt.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torch import nn

from llmcourse.checks import check_int
from llmcourse.data.knowledge import ATTRIBUTES, Entity, passage, question, split_entities
from llmcourse.data.tasks import (
    HELDOUT_MAPPINGS,
    HELDOUT_RULES,
    HELDOUT_TASKS,
    MAX_STEPS,
    TRAIN_TASKS,
    Example,
    arithmetic_task,
    get_task,
    kind_of,
)
from llmcourse.models.pretrained import validation_losses
from llmcourse.prompting.chat import encode_dialogue, reply_text, task_dialogue
from llmcourse.prompting.fewshot import expected_completion, few_shot_prompt, parse_answer
from llmcourse.prompting.scoring import generate_completions, score_completions
from llmcourse.text.bpe import BPETokenizer

START = "<|endoftext|>"


def prompt_ids(tokenizer: BPETokenizer, prompt: str) -> list[int]:
    """A plain prompt as the course's models read documents: after ``<|endoftext|>``."""
    return [tokenizer.specials[START], *tokenizer.encode(prompt)]


def episodes(
    task: str, n: int, shots: int, seed: int, split: str = "test", phrasing: int = 0
) -> list[tuple[list[Example], Example]]:
    """``n`` prompts' worth of ``(demonstrations, query)`` of ``task``: each an episode of
    ``shots + 1`` examples (one mapping per episode for a mapping task), the last one the
    query. Demonstrations and queries come from ``split``."""
    check_int("n", n)
    check_int("shots", shots, minimum=0)
    rng = random.Random(f"{task}-{seed}")
    out = []
    for _ in range(n):
        examples = get_task(task).episode(rng, shots + 1, split, phrasing)
        out.append((examples[:-1], examples[-1]))
    return out


def few_shot_accuracy(
    model: nn.Module,
    tokenizer: BPETokenizer,
    task: str,
    shots: int,
    n: int = 50,
    seed: int = 0,
    fmt: str = "qa",
    instruction: bool = True,
    phrasing: int = 0,
) -> float:
    """Greedy exact-match accuracy of ``n`` ``shots``-shot prompts of ``task`` (see
    :func:`episodes`), with the task's instruction first when ``instruction``."""
    pairs = []
    for demos, query in episodes(task, n, shots, seed, phrasing=phrasing):
        text = few_shot_prompt(
            query, demos, fmt, instruction=query.instruction if instruction else None
        )
        pairs.append(
            (prompt_ids(tokenizer, text), tokenizer.encode(expected_completion(query, fmt)))
        )
    return sum(s.greedy_match for s in score_completions(model, pairs)) / n


def chain_answers(
    model: nn.Module,
    tokenizer: BPETokenizer,
    prompts: Sequence[str],
    chain: bool,
    max_new_tokens: int = 64,
    temperature: float | None = None,
    generator: torch.Generator | None = None,
) -> list[str | None]:
    """The answers the model writes after each plain prompt, up to its line break: the
    first line (direct) or what follows "The answer is" (``chain``)."""
    newline = tokenizer.encode("\n")
    if len(newline) != 1:
        raise ValueError("the tokenizer must write a line break as one token")
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    outs = generate_completions(
        model, ids, max_new_tokens, newline[0], temperature=temperature, generator=generator
    )
    return [parse_answer(tokenizer.decode(o), chain=chain) for o in outs]


def chain_accuracy(
    model: nn.Module,
    tokenizer: BPETokenizer,
    demonstrations: Sequence[Example],
    queries: Sequence[Example],
    chain: bool,
    trigger: str | None = None,
) -> float:
    """Greedy accuracy on ``queries`` after the same demonstrations (answered with chains
    when ``chain``), in the ``qa`` format, reading the final answer of each completion."""
    prompts = [
        few_shot_prompt(q, demonstrations, "qa", chain=chain, trigger=trigger) for q in queries
    ]
    answers = chain_answers(model, tokenizer, prompts, chain=chain or trigger is not None)
    return sum(a == q.output for a, q in zip(answers, queries, strict=True)) / len(queries)


def chat_pairs(
    tokenizer: BPETokenizer, dialogues: Sequence[list[dict[str, str]]]
) -> list[tuple[list[int], list[int]]]:
    """``(prompt ids, reply ids)`` of dialogues whose last message is the assistant's: the
    prompt is everything before that reply, ending with ``<|assistant|>``; the reply
    ends with ``<|endoftext|>``."""
    pairs = []
    for messages in dialogues:
        if messages[-1]["role"] != "assistant":
            raise ValueError("each dialogue must end with the assistant's reply")
        prompt, _ = encode_dialogue(tokenizer, messages[:-1], add_generation_prompt=True)
        reply = tokenizer.encode(messages[-1]["content"]) + [tokenizer.specials[START]]
        pairs.append((prompt, reply))
    return pairs


def chat_accuracy(
    model: nn.Module, tokenizer: BPETokenizer, dialogues: Sequence[list[dict[str, str]]]
) -> float:
    """Greedy exact-match accuracy of the assistant's last reply of each dialogue."""
    scores = score_completions(model, chat_pairs(tokenizer, dialogues))
    return sum(s.greedy_match for s in scores) / len(dialogues)


def task_dialogues(
    task: str, n: int, seed: int = 0, phrasing: int = 0, split: str = "test"
) -> list[list[dict[str, str]]]:
    """``n`` one-exchange dialogues of ``task``: the instruction (in ``phrasing``) and input
    from the user, the answer (its chain, for arithmetic) from the assistant."""
    rng = random.Random(f"chat-{task}-{seed}")
    return [
        task_dialogue([example], chain=True)
        for example in get_task(task).episode(rng, n, split, phrasing)
    ]


def fact_dialogues(
    entities: Sequence[Entity],
    context: Sequence[Sequence[Entity]] | None = None,
) -> list[list[dict[str, str]]]:
    """Questions about every attribute of every animal, as one-exchange dialogues:
    closed-book, or after the passages of ``context[i]`` for ``entities[i]``."""
    out = []
    for i, entity in enumerate(entities):
        for attribute in ATTRIBUTES:
            text, answer = question(entity, attribute)
            if context is not None:
                text = " ".join(passage(e) for e in context[i]) + "\n" + text
            out.append(
                [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
            )
    return out


def chat_replies(
    model: nn.Module,
    tokenizer: BPETokenizer,
    dialogues: Sequence[list[dict[str, str]]],
    max_new_tokens: int = 64,
) -> list[str]:
    """The assistant's greedy replies to dialogues that end with a user message."""
    prompts = [encode_dialogue(tokenizer, d, add_generation_prompt=True)[0] for d in dialogues]
    end = tokenizer.specials[START]
    outs = generate_completions(model, prompts, max_new_tokens, end)
    return [reply_text(tokenizer, o) for o in outs]


# ------------------------------------------------------------- the cards' evaluations
KINDS = (
    "reverse",
    "sort",
    "first",
    "last",
    "length",
    "upper",
    "replace",
    "count",
    "plural",
    "translate",
    "number",
)
"""The kinds of training task the cards report (arithmetic and mappings apart)."""


def kind_tasks(kind: str, held_out: bool = False) -> tuple[str, ...]:
    """The training (or held-out) tasks of a kind, e.g. every ``replace_x_y`` task."""
    names = HELDOUT_TASKS if held_out else TRAIN_TASKS
    return tuple(n for n in names if kind_of(n) == kind)


def _spread(tasks: Sequence[str], n: int) -> list[tuple[str, int]]:
    """``n`` prompts spread over tasks: ``(task, how many)``, the first tasks one more."""
    tasks = list(tasks)[:n]
    return [(t, n // len(tasks) + (i < n % len(tasks))) for i, t in enumerate(tasks)]


def fewshot_card_metrics(model: nn.Module, tokenizer: BPETokenizer, n: int = 60) -> dict:
    """The documented evaluation of the few-shot model (``n`` prompts per number)."""
    four_shot = {}
    for kind in KINDS:
        parts = _spread(kind_tasks(kind), n)
        four_shot[kind] = (
            sum(few_shot_accuracy(model, tokenizer, t, 4, k) * k for t, k in parts) / n
        )
    mappings = {
        shots: sum(few_shot_accuracy(model, tokenizer, t, shots, n) for t in HELDOUT_MAPPINGS)
        / len(HELDOUT_MAPPINGS)
        for shots in (0, 1, 2, 4, 8)
    }
    rules = {t: few_shot_accuracy(model, tokenizer, t, 4, n) for t in HELDOUT_RULES}
    arithmetic = {"direct_4_shot": {}, "chain_2_shot": {}}
    demos = get_task("arithmetic").episode(random.Random("arithmetic-demos"), 4, "train")
    for steps in range(1, MAX_STEPS + 1):
        queries = arithmetic_task(steps).episode(random.Random(f"arithmetic-{steps}"), n, "test")
        arithmetic["direct_4_shot"][steps] = chain_accuracy(
            model, tokenizer, demos, queries, chain=False
        )
        arithmetic["chain_2_shot"][steps] = chain_accuracy(
            model, tokenizer, demos[:2], queries, chain=True
        )
    seen, unseen = split_entities()
    closed = {}
    for name, entities in (("seen", seen[:n]), ("unseen", unseen[:n])):
        pairs = []
        for e in entities:
            for attribute in ATTRIBUTES:
                q, a = question(e, attribute)
                pairs.append((prompt_ids(tokenizer, f"Q: {q}\nA:"), tokenizer.encode(f" {a}\n")))
        closed[name] = sum(s.greedy_match for s in score_completions(model, pairs)) / len(pairs)
    return {
        "metric": "greedy exact match on test-split inputs (llmcourse.prompting.evaluation)",
        "prompts_per_number": n,
        "loss": validation_losses(model, tokenizer),
        "four_shot_by_kind": four_shot,
        "four_shot_mean": sum(four_shot.values()) / len(four_shot),
        "held_out_mappings_by_shots": mappings,
        "held_out_rules_4_shot": rules,
        "arithmetic_by_steps": arithmetic,
        "closed_book_qa": closed,
    }


def instruct_card_metrics(model: nn.Module, tokenizer: BPETokenizer, n: int = 60) -> dict:
    """The documented evaluation of the instruction-tuned model: zero-shot replies in the
    chat template (``n`` dialogues per number)."""

    def kind_accuracy(kind: str, phrasing: int = 0, held_out: bool = False) -> float:
        parts = _spread(kind_tasks(kind, held_out), n)
        dialogues = [d for t, k in parts for d in task_dialogues(t, k, phrasing=phrasing)]
        return chat_accuracy(model, tokenizer, dialogues)

    trained = {kind: kind_accuracy(kind) for kind in (*KINDS, "arithmetic")}
    phrasing = {kind: kind_accuracy(kind, phrasing=2) for kind in (*KINDS, "arithmetic")}
    parameters = {kind: kind_accuracy(kind, held_out=True) for kind in ("replace", "count")}
    rules = {t: chat_accuracy(model, tokenizer, task_dialogues(t, n)) for t in HELDOUT_RULES}
    seen, unseen = split_entities()
    m = max(n // len(ATTRIBUTES), 1)
    rng = random.Random("distractors")
    distractors = [[e, *rng.sample(seen, 2)] for e in unseen[:m]]
    for group in distractors:
        rng.shuffle(group)
    facts = {
        "closed_book_seen": chat_accuracy(model, tokenizer, fact_dialogues(seen[:m])),
        "closed_book_unseen": chat_accuracy(model, tokenizer, fact_dialogues(unseen[:m])),
        "passage_unseen": chat_accuracy(
            model, tokenizer, fact_dialogues(unseen[:m], [[e] for e in unseen[:m]])
        ),
        "passage_and_2_distractors_unseen": chat_accuracy(
            model, tokenizer, fact_dialogues(unseen[:m], distractors)
        ),
    }
    return {
        "metric": "greedy exact match of the reply in the chat template, zero-shot, "
        "test-split inputs (llmcourse.prompting.evaluation)",
        "dialogues_per_number": n,
        "loss": validation_losses(model, tokenizer),
        "training_tasks_by_kind": trained,
        "training_tasks_mean": sum(trained.values()) / len(trained),
        "held_out_phrasing_by_kind": phrasing,
        "held_out_phrasing_mean": sum(phrasing.values()) / len(phrasing),
        "held_out_parameters": parameters,
        "held_out_rules": rules,
        "facts": facts,
    }
