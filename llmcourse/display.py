"""Small tables for the chapters: rendered as Markdown, so the book shows real tables."""

from __future__ import annotations

import re
from collections.abc import Sequence

_NUMBER = re.compile(r"[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?|[-+]?inf|")
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


class Literal(str):
    """A table cell shown exactly as written, such as a model's output: no Markdown in it
    is interpreted (``__init__`` stays, not bold; ``name.is`` is not a link; ``$x$`` is
    not math). Other cells may use Markdown and math."""


def _cell(value: object) -> str:
    text = str(value)
    if isinstance(value, Literal):
        # CommonMark lets any ASCII punctuation be backslash-escaped; an escaped dot also
        # splits the text, so that the link detector does not see "name.is" as a domain.
        return _ASCII_PUNCTUATION.sub(r"\\\1", text).replace("\n", " ")
    # Escape what Markdown would swallow: "<s>" looks like an HTML tag, "|" ends a cell.
    return text.replace("<", "&lt;").replace("|", "\\|")


def markdown_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; columns that hold only numbers are right-aligned.

    Raises:
        ValueError: a row whose length differs from the header's.
    """
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells, the header has {len(header)}")
    columns = list(zip(*[[str(c) for c in row] for row in rows], strict=True)) or [()] * len(header)
    numeric = [bool(col) and all(_NUMBER.fullmatch(c) for c in col) for col in columns]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---:" if num else "---" for num in numeric) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def show_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> None:
    """Display :func:`markdown_table` in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown(markdown_table(header, rows)))
