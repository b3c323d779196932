"""Chapter 12's prompts: task examples drawn evenly by kind, as chat prompts."""

from __future__ import annotations

import pytest

from llmcourse.alignment.prompts import RLHF_KINDS, chat_prompts, task_examples
from llmcourse.data.tasks import HELDOUT_TASKS, TRAIN_TASKS, get_task, kind_of, split_of
from llmcourse.models import load_pretrained
from llmcourse.prompting.chat import format_dialogue, task_message


def test_examples_cycle_through_the_kinds_and_are_reproducible():
    examples = task_examples(RLHF_KINDS, 25, "test", "seed a")
    assert [kind_of(e.task) for e in examples] == list(RLHF_KINDS) * 5
    assert all(e.task in TRAIN_TASKS for e in examples)
    assert task_examples(RLHF_KINDS, 25, "test", "seed a") == examples
    assert task_examples(RLHF_KINDS, 25, "test", "seed b") != examples


def test_the_split_decides_the_inputs():
    for split in ("train", "test"):
        for e in task_examples(("reverse", "sort"), 40, split, "split"):
            assert split_of(get_task(e.task).family, e.input) == split


def test_chat_prompts_are_the_user_turn_and_the_assistant_role():
    _, tokenizer = load_pretrained("instruct")
    examples = task_examples(RLHF_KINDS, 5, "train", "chat")
    for example, ids in zip(examples, chat_prompts(tokenizer, examples), strict=True):
        text = format_dialogue([{"role": "user", "content": task_message(example)}], True)
        assert tokenizer.decode(ids) == text


@pytest.mark.parametrize(
    ("kinds", "n", "split", "message"),
    [
        ((), 3, "train", "kinds must name"),
        (("reverse", "no such kind"), 3, "train", "kinds must name"),
        (RLHF_KINDS, 0, "train", "n must be an integer >= 1"),
        (RLHF_KINDS, 3, "valid", "split must be one of"),
    ],
)
def test_bad_arguments_are_refused(kinds, n, split, message):
    with pytest.raises(ValueError, match=message):
        task_examples(kinds, n, split, "x")


def test_held_out_tasks_are_never_drawn():
    drawn = {e.task for e in task_examples(RLHF_KINDS, 200, "train", "held out")}
    assert drawn and not drawn & set(HELDOUT_TASKS)
