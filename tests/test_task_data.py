"""The training data of the course's few-shot and instruction-tuned models
(llmcourse.prompting.task_data): only training tasks, inputs, phrasings and animals."""

import random

import pytest

from llmcourse.data.knowledge import knowledge_base, split_entities
from llmcourse.data.tasks import HELDOUT_TASKS, all_tasks, split_of
from llmcourse.prompting.chat import check_dialogue
from llmcourse.prompting.task_data import (
    DOCUMENT_KINDS,
    DOCUMENT_WEIGHTS,
    dialogue,
    few_shot_document,
    invented_entity,
    random_task,
    train_kinds,
)


def test_weights_cover_every_kind_and_sum_to_one():
    assert set(DOCUMENT_WEIGHTS) == set(DOCUMENT_KINDS)
    assert sum(DOCUMENT_WEIGHTS.values()) == pytest.approx(1)


def test_random_tasks_are_training_tasks_of_the_asked_kinds():
    rng = random.Random(0)
    names = {random_task(rng) for _ in range(2000)}
    assert not names & set(HELDOUT_TASKS)
    assert {random_task(rng, ["mapping"]) for _ in range(50)} <= set(train_kinds()["mapping"])


@pytest.mark.parametrize("kind", sorted(DOCUMENT_KINDS))
def test_documents_are_seeded_and_hold_no_held_out_phrasing(kind):
    a = [few_shot_document(random.Random(s), kind) for s in range(30)]
    assert a == [few_shot_document(random.Random(s), kind) for s in range(30)]
    held_out_phrasings = {t.instruction(2) for t in all_tasks().values()}
    held_out_phrasings -= {t.instruction(p) for t in all_tasks().values() for p in (0, 1)}
    for text in a:
        assert text and not any(p in text for p in held_out_phrasings)


def test_documents_of_letter_tasks_use_training_inputs_only():
    rng = random.Random(1)
    for _ in range(100):
        text = few_shot_document(rng, "task")
        for line in text.splitlines():
            if line.startswith("Q: "):
                word = line[3:]
                if all(len(c) == 1 for c in word.split(" ")):  # a word of spaced letters
                    assert split_of("letters", word) == "train"


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="kind must be one of"):
        few_shot_document(random.Random(0), "poetry")


def test_dialogues_alternate_and_never_mention_an_unseen_animal():
    unseen = {e.name for e in split_entities()[1]}
    rng = random.Random(2)
    for _ in range(300):
        messages = dialogue(rng)
        check_dialogue(messages)
        assert 1 <= sum(m["role"] == "assistant" for m in messages) <= 3
        text = " ".join(m["content"] for m in messages)
        assert not set(text.replace("?", " ").replace(".", " ").split()) & unseen


def test_invented_entities_are_not_in_the_knowledge_base():
    names = {e.name for e in knowledge_base()}
    rng = random.Random(3)
    assert all(invented_entity(rng).name not in names for _ in range(200))
