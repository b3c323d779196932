"""The task suite (llmcourse.data.tasks): exact answers, splits, and the registry."""

import random
from collections import Counter

import pytest

from llmcourse.data.tasks import (
    DIGITS,
    HELDOUT_MAPPINGS,
    HELDOUT_RULES,
    HELDOUT_TASKS,
    LETTERS,
    MAX_STEPS,
    MAX_VALUE,
    SINGULAR_NOUNS,
    TRAIN_TASKS,
    Example,
    MappingTask,
    all_tasks,
    arithmetic_problem,
    arithmetic_task,
    get_task,
    kind_of,
    split_of,
    steps_of,
)
from llmcourse.data.translation import LEXICON
from llmcourse.models import load_pretrained


def draws(name, n=200, split="train", seed=0):
    return get_task(name).episode(random.Random(seed), n, split)


# Each rule written out again, independently of the module, on the spaced letters.
RULES = {
    "reverse": lambda w: " ".join(reversed(w.split())),
    "sort": lambda w: " ".join(sorted(w.split())),
    "first": lambda w: w.split()[0],
    "last": lambda w: w.split()[-1],
    "second": lambda w: w.split()[1],
    "length": lambda w: str(len(w.split())),
    "upper": str.upper,
    "drop_first": lambda w: w.split(" ", 1)[1],
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_letter_tasks_answer_their_rule(name):
    for example in draws(name):
        letters = example.input.split()
        assert 3 <= len(letters) <= 6 and set(letters) <= set(LETTERS)
        assert example.output == RULES[name](example.input)
        assert example.task == name and example.instruction == get_task(name).instructions[0]


def test_replace_and_count_tasks():
    for example in draws("replace_a_e"):
        assert "a" in example.input.split()
        assert example.output == example.input.replace("a", "e")
    counts = Counter()
    for example in draws("count_t", 400):
        assert example.output == str(example.input.split().count("t"))
        counts[example.output] += 1
    assert set(counts) == {"0", "1", "2", "3"}


def test_word_tasks():
    for example in draws("plural"):
        assert example.input in SINGULAR_NOUNS
        assert example.output == ("children" if example.input == "child" else example.input + "s")
    for example in draws("translate", 50):
        words = example.input.split()
        assert len(words) <= 6 and words[-1] == "."
        assert sorted(example.output.split()) == sorted(LEXICON[w] for w in words)
    outputs = Counter(e.output for e in draws("number", 300))
    assert set(outputs) == {"singular", "plural"} and min(outputs.values()) > 100


def test_the_number_task_labels_the_subject_noun():
    plural_nouns = {n + "s" for n in SINGULAR_NOUNS if n != "child"} | {"children"}
    for example in draws("number", 200):
        nouns = [w for w in example.input.split() if w in plural_nouns or w in SINGULAR_NOUNS]
        assert example.output == ("plural" if nouns[0] in plural_nouns else "singular")


def test_arithmetic_problems_evaluate_to_their_answer_step_by_step():
    rng = random.Random(0)
    for n_steps in range(1, MAX_STEPS + 1):
        for _ in range(100):
            text, output, steps = arithmetic_problem(rng, n_steps)
            assert eval(text) == int(output)  # noqa: S307 - digits, + and - only
            assert len(steps) == n_steps and steps[-1].endswith(f"={output}")
            value = int(text[0])
            for step in steps:
                left, result = step.split("=")
                assert eval(left) == int(result) and int(left[: len(str(value))]) == value
                value = int(result)
                assert 0 <= value <= MAX_VALUE
    example = get_task("arithmetic").example(random.Random(3))
    assert example.chain == ", ".join(example.steps) + f". The answer is {example.output}."
    assert steps_of(example) == len(example.steps)
    assert {steps_of(e) for e in arithmetic_task(3).episode(rng, 20)} == {3}
    with pytest.raises(ValueError, match="n_steps must be an integer in"):
        arithmetic_problem(rng, MAX_STEPS + 1)


def test_chain_of_an_example_without_steps():
    assert Example("t", "i", "x", "7").chain == "The answer is 7."


def test_splits_are_disjoint_and_a_fifth_is_test():
    for name in ("reverse", "arithmetic", "translate"):
        train = {e.input for e in draws(name, 300, "train")}
        test = {e.input for e in draws(name, 300, "test")}
        assert not train & test
        assert all(split_of(get_task(name).family, t) == "test" for t in test)
    words = [" ".join(random.Random(i).choices(LETTERS, k=4)) for i in range(5000)]
    share = sum(split_of("letters", w) == "test" for w in words) / len(words)
    assert 0.17 < share < 0.23
    assert split_of("letters", "a b c") == split_of("letters", "a b c")  # stable


def test_the_same_seed_gives_the_same_examples():
    assert draws("sort", 20, seed=5) == draws("sort", 20, seed=5)
    assert draws("sort", 20, seed=5) != draws("sort", 20, seed=6)


def test_mapping_episodes_are_one_random_mapping_each():
    task = get_task("map_letter_digit")
    assert isinstance(task, MappingTask)
    rng = random.Random(0)
    mappings = []
    for _ in range(50):
        episode = task.episode(rng, 30)
        mapping = {}
        for example in episode:
            assert mapping.setdefault(example.input, example.output) == example.output
        assert example.input in LETTERS and example.output in DIGITS
        assert len(mapping) <= task.n_keys
        assert len(set(mapping.values())) == len(mapping)  # one-to-one
        mappings.append(tuple(sorted(mapping.items())))
    assert len(set(mappings)) > 40  # a new mapping almost every episode


def test_the_registry_and_its_splits():
    tasks = all_tasks()
    assert set(TRAIN_TASKS) | set(HELDOUT_TASKS) == set(tasks)
    assert not set(TRAIN_TASKS) & set(HELDOUT_TASKS)
    assert set(HELDOUT_RULES) | set(HELDOUT_MAPPINGS) <= set(HELDOUT_TASKS)
    replace = [n for n in tasks if kind_of(n) == "replace"]
    assert len(replace) == len(LETTERS) * (len(LETTERS) - 1)
    held = sum(n in HELDOUT_TASKS for n in replace) / len(replace)
    assert 0.1 < held < 0.3
    assert {kind_of(n) for n in TRAIN_TASKS} >= {"reverse", "replace", "count", "mapping"}
    assert all(len(t.instructions) == 3 for t in tasks.values())
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        get_task("nope")
    with pytest.raises(ValueError, match="phrasing must be an integer in"):
        get_task("sort").instruction(3)
    with pytest.raises(ValueError, match="split must be one of"):
        get_task("sort").example(random.Random(0), "valid")


def test_every_letter_and_digit_is_one_token_of_the_shipped_tokenizer():
    _, tokenizer = load_pretrained()
    for letter in LETTERS:
        assert len(tokenizer.encode(f" {letter}")) == 1
        assert len(tokenizer.encode(f" {letter.upper()}")) == 1
    for digit in DIGITS:
        assert len(tokenizer.encode(digit)) == 1
    assert len(tokenizer.encode("\n")) == 1
