"""Tasks with exact answers, for prompting and instruction tuning (Chapter 11).

Every task draws unlimited examples from a seeded ``random.Random``, each with its one
correct answer, short enough that a few demonstrations fit a 256-token context:

- **letter tasks** on a word of spaced letters (``"d o g"``, so that every letter is one
  token): ``copy``, ``reverse``, ``sort``, ``first``, ``last``, ``length``, ``upper``, and the
  instructions with a parameter, ``replace_a_e`` (replace every ``a`` with ``e``) and
  ``count_a`` (how many ``a``), one task per letter or pair of letters;
- **word tasks** on the course grammar: ``plural`` (``cat`` -> ``cats``), ``translate``
  (a short sentence into Grammish, :mod:`llmcourse.data.translation`) and ``number``
  (is the subject singular or plural, :mod:`llmcourse.data.labelled`);
- **arithmetic**: a chain of one to five additions and subtractions
  (``"7+5-3"`` -> ``"9"``), with the intermediate results as a chain of thought
  (``"7+5=12, 12-3=9. The answer is 9."``);
- **random mappings** (:class:`MappingTask`): every episode draws a new one-to-one
  mapping from a few keys to values, so only the demonstrations in the prompt can tell
  the answer: a task that nothing but in-context learning solves.

**Splits.** By instance: an input belongs to the test split when a stable hash of the
task's family and the input falls in one fifth of the range (:func:`split_of`), so that
no test input is ever a training input. By task: :data:`TRAIN_TASKS` are trained on,
:data:`HELDOUT_TASKS` never are: new rules (``second``, ``drop_first``), the parameters
of ``replace`` and ``count`` that the hash holds out, and mappings between vocabularies
that no training mapping uses. Each task has three phrasings of its instruction; models
are trained on the first two, and the third is held out.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

from llmcourse.checks import check_choice, check_int, check_int_in
from llmcourse.data.grammar import english_grammar
from llmcourse.data.labelled import agreement_examples
from llmcourse.data.translation import LEXICON, NOUNS, translate

SPLITS = ("train", "test")
LETTERS = tuple("abcdefhilmnoprstuw")
"""The letters of the letter tasks: one token each after a space, in lower and upper case."""
DIGITS = tuple("0123456789")
COLOURS = ("red", "blue", "green", "black", "white", "brown", "grey", "pink")
SINGULAR_NOUNS = tuple(sorted(n for n in NOUNS if not n.endswith("s") and n != "children"))
GRAMMISH_NOUNS = tuple(LEXICON[n] for n in SINGULAR_NOUNS)
MIN_LETTERS, MAX_LETTERS = 3, 6
MAX_STEPS = 5
MAX_VALUE = 20


@dataclass(frozen=True)
class Example:
    """One instance of a task.

    Attributes:
        task: the task's name.
        instruction: what the task asks, in words (one of the task's phrasings).
        input: the text the instruction applies to, e.g. ``"d o g"``.
        output: the one correct answer, e.g. ``"g o d"``.
        steps: intermediate results that lead to the answer (arithmetic only), e.g.
            ``("7+5=12", "12-3=9")``.
    """

    task: str
    instruction: str
    input: str
    output: str
    steps: tuple[str, ...] = ()

    @property
    def chain(self) -> str:
        """A step-by-step answer: the steps, then ``The answer is <output>.``"""
        steps = ", ".join(self.steps)
        return (
            f"{steps}. The answer is {self.output}." if steps else f"The answer is {self.output}."
        )


def split_of(family: str, text: str) -> str:
    """``"test"`` for a fifth of the ``(family, text)`` pairs, ``"train"`` for the rest:
    a stable hash (CRC-32), the same on every machine and in every process."""
    return "test" if zlib.crc32(f"{family}|{text}".encode()) % 5 == 0 else "train"


Draw = Callable[[random.Random], tuple[str, str, tuple[str, ...]]]


@dataclass(frozen=True)
class Task:
    """A task: its name, its family, three phrasings of its instruction and a sampler.

    ``draw(rng)`` returns ``(input, output, steps)``. Inputs are split by
    :func:`split_of` on ``(family, input)``: tasks of one family share their inputs'
    split, so a test word of ``reverse`` is a test word of ``sort`` too.
    """

    name: str
    family: str
    instructions: tuple[str, str, str]
    draw: Draw = field(repr=False, compare=False)

    def instruction(self, phrasing: int = 0) -> str:
        """Phrasing 0 or 1 (trained on) or 2 (held out)."""
        check_int_in("phrasing", phrasing, 0, len(self.instructions) - 1)
        return self.instructions[phrasing]

    def example(self, rng: random.Random, split: str = "train", phrasing: int = 0) -> Example:
        """One example whose input is in ``split``."""
        check_choice("split", split, SPLITS)
        instruction = self.instruction(phrasing)
        for _ in range(10_000):
            text, output, steps = self.draw(rng)
            if split_of(self.family, text) == split:
                return Example(self.name, instruction, text, output, steps)
        raise RuntimeError(f"task {self.name!r} drew no input of the {split} split")

    def episode(
        self, rng: random.Random, n: int, split: str = "train", phrasing: int = 0
    ) -> list[Example]:
        """``n`` examples of the same task, as the demonstrations and query of one prompt."""
        check_int("n", n, minimum=0)
        return [self.example(rng, split, phrasing) for _ in range(n)]


@dataclass(frozen=True)
class MappingTask(Task):
    """A task whose rule is a random one-to-one mapping, drawn anew for every episode.

    An episode picks ``n_keys`` keys of ``keys`` and gives each a different value of
    ``values``; its examples then draw keys uniformly, with replacement. A query's key
    may be missing from the demonstrations before it: the answer is then a guess.
    """

    keys: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    n_keys: int = 4

    def example(self, rng: random.Random, split: str = "train", phrasing: int = 0) -> Example:
        return self.episode(rng, 1, split, phrasing)[0]

    def episode(
        self, rng: random.Random, n: int, split: str = "train", phrasing: int = 0
    ) -> list[Example]:
        check_int("n", n, minimum=0)
        check_choice("split", split, SPLITS)
        instruction = self.instruction(phrasing)
        chosen = rng.sample(self.keys, self.n_keys)
        mapping = dict(zip(chosen, rng.sample(self.values, self.n_keys), strict=True))
        keys = [rng.choice(chosen) for _ in range(n)]
        return [Example(self.name, instruction, key, mapping[key]) for key in keys]


# ---------------------------------------------------------------------- letter tasks
def spaced(letters: Sequence[str]) -> str:
    """``["d", "o", "g"]`` -> ``"d o g"``."""
    return " ".join(letters)


def _word(rng: random.Random, alphabet: Sequence[str] = LETTERS) -> list[str]:
    return [rng.choice(alphabet) for _ in range(rng.randint(MIN_LETTERS, MAX_LETTERS))]


def _letter_task(name: str, rule: Callable[[list[str]], str], *instructions: str) -> Task:
    def draw(rng: random.Random) -> tuple[str, str, tuple[str, ...]]:
        word = _word(rng)
        return spaced(word), rule(word), ()

    return Task(name, "letters", instructions, draw)


def _replace_task(old: str, new: str) -> Task:
    def draw(rng: random.Random) -> tuple[str, str, tuple[str, ...]]:
        word = _word(rng)
        word[rng.randrange(len(word))] = old  # at least one to replace
        return spaced(word), spaced([new if c == old else c for c in word]), ()

    instructions = (
        f"Replace every {old} with {new}.",
        f"Change each {old} into {new}.",
        f"Write {new} wherever there is {old}.",
    )
    return Task(f"replace_{old}_{new}", "letters", instructions, draw)


def _count_task(letter: str) -> Task:
    others = tuple(c for c in LETTERS if c != letter)

    def draw(rng: random.Random) -> tuple[str, str, tuple[str, ...]]:
        word = _word(rng, others)
        hits = rng.sample(range(len(word)), rng.randint(0, min(3, len(word))))
        for i in hits:
            word[i] = letter
        return spaced(word), str(len(hits)), ()

    instructions = (
        f"Count the letter {letter}.",
        f"How many times does {letter} appear?",
        f"Give the number of {letter}s.",
    )
    return Task(f"count_{letter}", "letters", instructions, draw)


def _letter_tasks() -> list[Task]:
    return [
        _letter_task(
            "copy",
            spaced,
            "Copy the letters.",
            "Write the letters again.",
            "Repeat the letters exactly.",
        ),
        _letter_task(
            "reverse",
            lambda w: spaced(w[::-1]),
            "Reverse the letters.",
            "Write the letters backwards.",
            "Put the letters in the opposite order.",
        ),
        _letter_task(
            "sort",
            lambda w: spaced(sorted(w)),
            "Sort the letters.",
            "Put the letters in alphabetical order.",
            "Arrange the letters from a to z.",
        ),
        _letter_task(
            "first",
            lambda w: w[0],
            "Give the first letter.",
            "Which letter comes first?",
            "Write only the first letter.",
        ),
        _letter_task(
            "last",
            lambda w: w[-1],
            "Give the last letter.",
            "Which letter comes last?",
            "Write only the last letter.",
        ),
        _letter_task(
            "length",
            lambda w: str(len(w)),
            "Count the letters.",
            "How many letters are there?",
            "Give the number of letters.",
        ),
        _letter_task(
            "upper",
            lambda w: spaced(c.upper() for c in w),
            "Write the letters in capitals.",
            "Make the letters upper case.",
            "Capitalise every letter.",
        ),
        _letter_task(
            "second",
            lambda w: w[1],
            "Give the second letter.",
            "Which letter comes second?",
            "Write only the second letter.",
        ),
        _letter_task(
            "drop_first",
            lambda w: spaced(w[1:]),
            "Remove the first letter.",
            "Leave out the first letter.",
            "Write the letters without the first one.",
        ),
    ]


# ------------------------------------------------------------------------ word tasks
def _plural(rng: random.Random) -> tuple[str, str, tuple[str, ...]]:
    noun = rng.choice(SINGULAR_NOUNS)
    return noun, "children" if noun == "child" else noun + "s", ()


@cache
def _grammar():
    return english_grammar()


@cache
def _subjects() -> tuple[tuple[str, str], ...]:
    """Subjects with up to two prepositional phrases, and their number (a fixed pool)."""
    examples = agreement_examples(4000, seed=11, max_modifiers=2)
    return tuple((" ".join(e.prefix), e.number) for e in examples)


def _translate(rng: random.Random) -> tuple[str, str, tuple[str, ...]]:
    grammar = _grammar()
    while True:
        words = grammar.sample(rng).tokens
        if len(words) <= 6:
            return " ".join(words), " ".join(translate(words)), ()


def _number(rng: random.Random) -> tuple[str, str, tuple[str, ...]]:
    prefix, number = rng.choice(_subjects())
    return prefix, {"sg": "singular", "pl": "plural"}[number], ()


def _word_tasks() -> list[Task]:
    return [
        Task(
            "plural",
            "nouns",
            ("Give the plural.", "Write the plural form.", "What is the plural?"),
            _plural,
        ),
        Task(
            "translate",
            "sentences",
            (
                "Translate into Grammish.",
                "Say it in Grammish.",
                "Give the Grammish translation.",
            ),
            _translate,
        ),
        Task(
            "number",
            "subjects",
            (
                "Is the subject singular or plural?",
                "Singular or plural?",
                "Say whether the subject is one thing or many.",
            ),
            _number,
        ),
    ]


# ------------------------------------------------------------------------ arithmetic
def arithmetic_problem(rng: random.Random, n_steps: int) -> tuple[str, str, tuple[str, ...]]:
    """A chain of ``n_steps`` additions and subtractions of one-digit numbers, every
    intermediate result in ``[0, MAX_VALUE]``: ``("7+5-3", "9", ("7+5=12", "12-3=9"))``."""
    check_int_in("n_steps", n_steps, 1, MAX_STEPS)
    value = rng.randint(1, 9)
    text, steps = str(value), []
    for _ in range(n_steps):
        operand = rng.randint(1, 9)
        add = value - operand < 0 or (value + operand <= MAX_VALUE and rng.random() < 0.5)
        new = value + operand if add else value - operand
        sign = "+" if add else "-"
        steps.append(f"{value}{sign}{operand}={new}")
        text += f"{sign}{operand}"
        value = new
    return text, str(value), tuple(steps)


def arithmetic_task(n_steps: int | None = None) -> Task:
    """The arithmetic task with ``n_steps`` steps, or 1 to :data:`MAX_STEPS` at random."""
    if n_steps is not None:
        check_int_in("n_steps", n_steps, 1, MAX_STEPS)

    def draw(rng: random.Random) -> tuple[str, str, tuple[str, ...]]:
        return arithmetic_problem(rng, n_steps or rng.randint(1, MAX_STEPS))

    name = "arithmetic" if n_steps is None else f"arithmetic_{n_steps}"
    instructions = ("Work out the result.", "Calculate.", "What does it come to?")
    return Task(name, "arithmetic", instructions, draw)


def steps_of(example: Example) -> int:
    """The number of operations of an arithmetic example (``"7+5-3"``: 2)."""
    return sum(example.input.count(sign) for sign in "+-")


# -------------------------------------------------------------------------- mappings
def _mapping_tasks() -> list[MappingTask]:
    instructions = (
        "Answer as in the examples.",
        "Follow the examples.",
        "Use the same mapping as the examples.",
    )
    pools = {
        "map_letter_digit": (LETTERS, DIGITS),
        "map_digit_letter": (DIGITS, LETTERS),
        "map_letter_letter": (LETTERS, LETTERS),
        "map_noun_digit": (SINGULAR_NOUNS, DIGITS),
        "map_grammish_colour": (GRAMMISH_NOUNS, COLOURS),
        "map_colour_letter": (COLOURS, LETTERS),
    }
    return [
        MappingTask(name, "mapping", instructions, _no_draw, keys=keys, values=values)
        for name, (keys, values) in pools.items()
    ]


def _no_draw(rng: random.Random) -> tuple[str, str, tuple[str, ...]]:
    raise TypeError("a mapping task draws whole episodes")


# --------------------------------------------------------------------- the registry
@cache
def all_tasks() -> dict[str, Task]:
    """Every task by name: the letter tasks (with one ``replace`` task per ordered pair
    of letters and one ``count`` task per letter), the word tasks, arithmetic and the
    mappings."""
    tasks = [*_letter_tasks(), *_word_tasks(), arithmetic_task(), *_mapping_tasks()]
    tasks += [_replace_task(a, b) for a in LETTERS for b in LETTERS if a != b]
    tasks += [_count_task(a) for a in LETTERS]
    return {task.name: task for task in tasks}


def get_task(name: str) -> Task:
    """The task called ``name`` (see :func:`all_tasks`)."""
    tasks = all_tasks()
    if name not in tasks:
        raise ValueError(f"unknown task {name!r}; see llmcourse.data.tasks.all_tasks()")
    return tasks[name]


def kind_of(name: str) -> str:
    """The kind of a task: ``"replace"`` or ``"count"`` for the tasks with a parameter,
    ``"mapping"`` for the mappings, else its name (training samples kinds evenly)."""
    if name.startswith(("replace_", "count_")):
        return name.split("_", 1)[0]
    return "mapping" if name.startswith("map_") else name


def _held_out_parameter(name: str) -> bool:
    return name.startswith(("replace_", "count_")) and split_of("parameters", name) == "test"


HELDOUT_RULES = ("second", "drop_first")
HELDOUT_MAPPINGS = ("map_grammish_colour", "map_colour_letter")


def _split_tasks() -> tuple[tuple[str, ...], tuple[str, ...]]:
    held = set(HELDOUT_RULES) | set(HELDOUT_MAPPINGS)
    held |= {name for name in all_tasks() if _held_out_parameter(name)}
    names = list(all_tasks())
    return (
        tuple(n for n in names if n not in held),
        tuple(n for n in names if n in held),
    )


TRAIN_TASKS, HELDOUT_TASKS = _split_tasks()
"""The names of the tasks models are trained on, and of those they never see."""
