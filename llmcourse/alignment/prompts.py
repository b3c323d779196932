"""Chapter 12's prompts: task examples drawn evenly by kind, as chat prompts.

The preference data, the policies' training prompts and their evaluation all ask the
instruction-tuned model (Chapter 11) to do one of a few kinds of training task, in turn,
with the chat template it was tuned on. A seed string names each draw, so that the
recipe, the chapter and the tests see the same examples.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from llmcourse.checks import check_int
from llmcourse.data.tasks import SPLITS, TRAIN_TASKS, Example, get_task, kind_of
from llmcourse.prompting.chat import encode_dialogue, task_message
from llmcourse.text.bpe import BPETokenizer

RLHF_KINDS = ("reverse", "sort", "replace", "count", "arithmetic")
"""The kinds of task that Chapter 12 aligns the model on: each has one right answer,
and the instruction-tuned model gets each right often but not always."""


def task_examples(kinds: Sequence[str], n: int, split: str, seed: str) -> list[Example]:
    """``n`` examples of the training tasks of ``kinds``, cycling through the kinds in
    order (example ``i`` is of kind ``kinds[i % len(kinds)]``), each of a task drawn at
    random among that kind's, with inputs of ``split`` (``"train"`` or ``"test"``)."""
    check_int("n", n)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    tasks = {kind: [t for t in TRAIN_TASKS if kind_of(t) == kind] for kind in kinds}
    empty = [kind for kind, names in tasks.items() if not names]
    if not kinds or empty:
        raise ValueError(f"kinds must name kinds of training task, got {list(kinds)!r}")
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        examples.append(get_task(rng.choice(tasks[kind])).example(rng, split))
    return examples


def chat_prompts(tokenizer: BPETokenizer, examples: Sequence[Example]) -> list[list[int]]:
    """The token ids of each example's user turn in the chat template, ending with the
    assistant's role token: what the model continues with its reply."""
    return [
        encode_dialogue(tokenizer, [{"role": "user", "content": task_message(e)}], True)[0]
        for e in examples
    ]
