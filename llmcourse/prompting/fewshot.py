"""Few-shot prompts: an instruction, demonstrations, and the query, in one format.

GPT-3 {Brown et al., 2020} showed that a language model can do a task it was never
fine-tuned for when the prompt holds a few solved examples (**demonstrations**) before
the question: zero-shot (the instruction only), one-shot, few-shot. A prompt here is

    {instruction}\\n{demo 1}{demo 2}...{query}

where each demonstration is written in a :class:`PromptFormat`, e.g. ``"qa"``::

    Reverse the letters.
    Q: d o g
    A: g o d
    Q: c a t
    A:

and the model's completion, up to its line break, is its answer. With ``chain=True``
the demonstrations answer step by step (:attr:`~llmcourse.data.tasks.Example.chain`), a
chain-of-thought prompt; with ``trigger`` (``"Let's think step by step."``) the answer
of the query starts with it, a zero-shot chain of thought.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from llmcourse.checks import check_choice
from llmcourse.data.tasks import Example

STEP_BY_STEP = "Let's think step by step."


@dataclass(frozen=True)
class PromptFormat:
    """How a demonstration is written: ``query.format(input=...)`` then
    ``answer.format(output=...)``; the query of the prompt is ``query`` alone."""

    name: str
    query: str
    answer: str


FORMATS = {
    "qa": PromptFormat("qa", "Q: {input}\nA:", " {output}\n"),
    "arrow": PromptFormat("arrow", "{input} =>", " {output}\n"),
    "io": PromptFormat("io", "Input: {input}\nOutput:", " {output}\n"),
}
"""The formats. The course's models are trained on ``"qa"`` and ``"arrow"``; ``"io"``
is never in their training data."""


def _format(fmt: str | PromptFormat) -> PromptFormat:
    if isinstance(fmt, PromptFormat):
        return fmt
    check_choice("fmt", fmt, FORMATS)
    return FORMATS[fmt]


def answer_text(example: Example, chain: bool = False) -> str:
    """What a demonstration's answer says: the output, or its chain of thought."""
    return example.chain if chain else example.output


def demonstration(example: Example, fmt: str | PromptFormat = "qa", chain: bool = False) -> str:
    """One solved example in ``fmt``: ``"Q: d o g\\nA: g o d\\n"``."""
    f = _format(fmt)
    return f.query.format(input=example.input) + f.answer.format(output=answer_text(example, chain))


def few_shot_prompt(
    query: Example,
    demonstrations: Sequence[Example] = (),
    fmt: str | PromptFormat = "qa",
    instruction: str | None = None,
    chain: bool = False,
    trigger: str | None = None,
) -> str:
    """The prompt for ``query``: the instruction line (if any), the demonstrations, and
    the query's input, ending where the answer begins.

    Args:
        query: the example to answer (its output is not in the prompt).
        demonstrations: solved examples, in order (none: zero-shot).
        fmt: a name in :data:`FORMATS` or a :class:`PromptFormat`.
        instruction: the first line; None for none (the demonstrations alone must then
            show the task).
        chain: demonstrations answer with their chains of thought.
        trigger: text that starts the query's answer, e.g. :data:`STEP_BY_STEP`.
    """
    f = _format(fmt)
    if any(not isinstance(d, Example) for d in (query, *demonstrations)):
        raise TypeError("the query and the demonstrations must be Example objects")
    head = "" if instruction is None else f"{instruction}\n"
    demos = "".join(demonstration(d, f, chain) for d in demonstrations)
    prompt = head + demos + f.query.format(input=query.input)
    return prompt + (f" {trigger}" if trigger else "")


def expected_completion(
    example: Example, fmt: str | PromptFormat = "qa", chain: bool = False
) -> str:
    """The completion of a correct answer after :func:`few_shot_prompt`, up to and with
    its line break: ``" g o d\\n"``."""
    return _format(fmt).answer.format(output=answer_text(example, chain))


_ANSWER = re.compile(r"The answer is (.+?)\.?\s*$")


def parse_answer(completion: str, chain: bool = False) -> str | None:
    """The answer in a model's completion: its first line, stripped; with ``chain``, what
    follows ``The answer is`` on that line. None when there is none."""
    line = completion.split("\n", 1)[0].strip()
    if chain:
        match = _ANSWER.search(line)
        return match.group(1).strip() if match else None
    return line or None
