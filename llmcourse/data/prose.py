"""Real English prose that is on every machine: the Python documentation's topics.

``pydoc_data.topics`` ships with CPython and holds about 465 KB of reference text
(the pages behind ``help("assignment")``). We keep its prose paragraphs (about 53,000
words), drop code listings, grammar rules and headings, keep one copy of paragraphs
that several topics share (``assignment`` and ``augassign`` overlap, for example), and
split the paragraphs into train and validation sets deterministically: every
``validation_every``-th paragraph in a fixed order goes to validation, so validation
text never occurs in training and both sets spread over the whole documentation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pydoc_data.topics import topics

_UNDERLINE = re.compile(r"^[*=\-~^\"]{3,}$")
_PLAIN_WORD = re.compile(r"^[(\"]?[A-Za-z][a-z]*[,.;:)\"]*$")


@dataclass(frozen=True)
class Split:
    """Train and validation text; each is a list of paragraphs (one line each)."""

    train: list[str]
    validation: list[str]


def _is_prose(paragraph: str) -> bool:
    """At least 8 words, mostly plain words: no code, grammar rules or headings."""
    words = paragraph.split()
    if len(words) < 8 or "::=" in paragraph or ">>>" in paragraph:
        return False
    if any(_UNDERLINE.match(line.strip()) for line in paragraph.splitlines()):
        return False
    return sum(bool(_PLAIN_WORD.match(w)) for w in words) >= 0.75 * len(words)


def prose_paragraphs() -> list[str]:
    """The distinct prose paragraphs of the Python docs topics, in sorted-topic order.

    Each paragraph is returned on a single line with runs of whitespace collapsed;
    a paragraph that several topics share is kept where it first occurs.
    """
    paragraphs: dict[str, None] = {}
    for name in sorted(topics):
        for block in re.split(r"\n\s*\n", topics[name]):
            if _is_prose(block):
                paragraphs.setdefault(" ".join(block.split()))
    return list(paragraphs)


def python_docs(validation_every: int = 10) -> Split:
    """The Python documentation's prose, split into train and validation paragraphs.

    Args:
        validation_every: paragraph ``i`` goes to validation when
            ``i % validation_every == validation_every - 1`` (10 gives a 90/10 split).

    Returns:
        A :class:`Split`; the same on every call and every machine with the same
        Python version.
    """
    if not isinstance(validation_every, int) or validation_every < 2:
        raise ValueError(f"validation_every must be an integer >= 2, got {validation_every!r}")
    paragraphs = prose_paragraphs()
    train, validation = [], []
    for i, paragraph in enumerate(paragraphs):
        is_validation = i % validation_every == validation_every - 1
        (validation if is_validation else train).append(paragraph)
    return Split(train=train, validation=validation)
