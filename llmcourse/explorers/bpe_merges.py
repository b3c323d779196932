"""Explorer of Chapter 5: byte-level BPE merges, learned from the reader's text, stepped one
at a time.

:func:`bpe_step` learns the merges of a text with the package's trainer
(:func:`llmcourse.text.count_words` and :func:`llmcourse.text.learn_merges`), then
shows the text's pre-tokens as tokens after the first ``n`` merges
(:class:`llmcourse.text.BPETokenizer` with those merges), the merge just applied and how
often its pair occurred when it was chosen. :func:`explore_bpe` wraps it in a widget: a
text box and a slider over ``n``; tokens are spelled as in the chapter, with GPT-2's
byte-level characters (``Ġ`` for a space).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

import ipywidgets

from llmcourse.checks import check_int
from llmcourse.explorers.widget import Explorer, Rendering, html_rendering
from llmcourse.text.bpe import BPETokenizer
from llmcourse.text.bpe_training import count_words, learn_merges
from llmcourse.text.bytelevel import to_byte_level
from llmcourse.text.pretokenize import pretokenize

MAX_MERGES = 400
"""The most merges the explorer learns from one text."""


@lru_cache(maxsize=8)
def text_merges(text: str, max_merges: int = MAX_MERGES) -> tuple[tuple[bytes, bytes], ...]:
    """The merges the package's trainer learns from ``text`` (one training text), at most
    ``max_merges``: fewer when no adjacent pair is left. Kept for the last 8 texts."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    check_int("max_merges", max_merges, minimum=0)
    return tuple(learn_merges(count_words([text]), 256 + max_merges))


@dataclass(frozen=True)
class BPEStep:
    """A text after the first ``n_merges`` merges learned from it.

    Attributes:
        merges: every merge learned from the text, in order.
        n_merges: how many of them are applied.
        words: each pre-token of the text as its tokens (bytes), in order.
        new: for each token of ``words``, whether the last merge applied made it.
        count: how often the last merge's pair occurred in the text when it was chosen
            (0 before any merge).
        n_bytes: the text's length in UTF-8 bytes; ``n_tokens``: in tokens now.
    """

    merges: tuple[tuple[bytes, bytes], ...]
    n_merges: int
    words: tuple[tuple[bytes, ...], ...]
    new: tuple[tuple[bool, ...], ...]
    count: int
    n_bytes: int
    n_tokens: int

    @property
    def last(self) -> tuple[bytes, bytes] | None:
        """The merge applied last, or None before any merge."""
        return self.merges[self.n_merges - 1] if self.n_merges else None


def segment(text: str, merges: Sequence[tuple[bytes, bytes]]) -> list[list[bytes]]:
    """Each pre-token of ``text`` as the tokens (bytes) that ``merges`` make of it."""
    tokenizer = BPETokenizer(merges)
    return [[tokenizer.vocab[i] for i in tokenizer.encode(word)] for word in pretokenize(text)]


def bpe_step(text: str, n_merges: int, max_merges: int = MAX_MERGES) -> BPEStep:
    """The text after the first ``n_merges`` of the merges learned from it.

    Args:
        text: the training text, which is also the text shown.
        n_merges: in ``[0, len(merges)]``.
        max_merges: the most merges learned (:func:`text_merges`).
    """
    merges = text_merges(text, max_merges)
    check_int("n_merges", n_merges, minimum=0)
    if n_merges > len(merges):
        raise ValueError(
            f"n_merges must be at most {len(merges)} (the merges learned), got {n_merges}"
        )
    words = segment(text, merges[:n_merges])
    count, new = 0, [[False] * len(word) for word in words]
    if n_merges:
        left, right = merges[n_merges - 1]
        before = segment(text, merges[: n_merges - 1])
        count = sum(pair == (left, right) for word in before for pair in pairwise(word))
        for w, (old, word) in enumerate(zip(before, words, strict=True)):
            if len(word) < len(old):  # the merge shortened this word: mark its new tokens
                new[w] = [token == left + right for token in word]
    return BPEStep(
        merges=merges,
        n_merges=n_merges,
        words=tuple(tuple(word) for word in words),
        new=tuple(tuple(flags) for flags in new),
        count=count,
        n_bytes=len(text.encode()),
        n_tokens=sum(len(word) for word in words),
    )


def spelled(token: bytes) -> str:
    """A token spelled with GPT-2's byte-level characters (``Ġ`` for a space)."""
    return to_byte_level(token)


TOKEN_STYLE = "font-family:monospace;padding:0 2px;margin:1px 1px;border-radius:3px;"
COLORS = ("#dbeafe", "#fde68a")  # alternate, so that neighbouring tokens stand apart


def bpe_html(step: BPEStep, recent: int = 6) -> str:
    """An HTML fragment: the merge just applied, the length in tokens, the text as tokens
    (the ones the last merge made outlined in red), and the last ``recent`` merges."""
    if step.last is None:
        head = f"No merge yet: the text is its {step.n_bytes} bytes."
    else:
        left, right = step.last
        head = (
            f"Merge {step.n_merges} of {len(step.merges)}: <code>{html.escape(spelled(left))}"
            f"</code> + <code>{html.escape(spelled(right))}</code> &rarr; <code>"
            f"{html.escape(spelled(left + right))}</code>, a pair that occurred {step.count} "
            f"times. {step.n_bytes} bytes are now {step.n_tokens} tokens "
            f"({step.n_bytes / step.n_tokens:.2f} bytes per token)."
        )
    spans, i = [], 0
    for word, flags in zip(step.words, step.new, strict=True):
        for token, is_new in zip(word, flags, strict=True):
            border = "outline:2px solid #dc2626;" if is_new else ""
            spans.append(
                f'<span style="{TOKEN_STYLE}background:{COLORS[i % 2]};{border}">'
                f"{html.escape(spelled(token))}</span>"
            )
            i += 1
    first = max(0, step.n_merges - recent)
    listed = ", ".join(
        f"{n + 1}: <code>{html.escape(spelled(a))} {html.escape(spelled(b))}</code>"
        for n, (a, b) in enumerate(step.merges[first : step.n_merges], start=first)
    )
    tail = f"<p>Last merges: {listed}</p>" if listed else ""
    return f'<div><p>{head}</p><p style="line-height:1.9">{"".join(spans)}</p>{tail}</div>'


def explore_bpe(text: str, n_merges: int = 10, max_merges: int = MAX_MERGES) -> Explorer:
    """A widget: type a text (it is the training text), then step through the merges BPE
    learns from it with a slider, watching the tokens grow.

    Args:
        text: the initial text.
        n_merges: the slider's initial value (at most the merges learned).
        max_merges: the most merges learned from a text.

    Training runs once per text (a new text: the slider's range follows); a step only
    replays the merges.
    """
    merges = text_merges(text, max_merges)
    if not 0 <= n_merges <= len(merges):
        raise ValueError(f"n_merges must be in [0, {len(merges)}], got {n_merges!r}")
    style = {"description_width": "initial"}
    box = ipywidgets.Textarea(
        value=text,
        description="text",
        continuous_update=False,
        layout=ipywidgets.Layout(width="95%", height="5em"),
        style=style,
    )
    slider = ipywidgets.IntSlider(
        value=n_merges, min=0, max=len(merges), description="merges", style=style
    )

    def new_text(change: dict) -> None:  # registered first: runs before the redraw
        slider.max = len(text_merges(change["new"], max_merges))  # clamps the value

    box.observe(new_text, names="value")

    def render(text: str, n_merges: int) -> Rendering:
        step = bpe_step(text, min(n_merges, len(text_merges(text, max_merges))), max_merges)
        summary = f"{step.n_merges} merges: {step.n_bytes} bytes, {step.n_tokens} tokens"
        return html_rendering(bpe_html(step), summary)

    return Explorer({"text": box, "n_merges": slider}, render, "explorer: BPE merges", per_row=1)
