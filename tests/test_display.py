"""Markdown tables for the chapters."""

import html
import re

import pytest
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin

from llmcourse.display import Literal, markdown_table


def test_numbers_are_right_aligned_and_text_left_aligned():
    table = markdown_table(["model", "ppl"], [["bigram", "58.6"], ["uniform", "1,801"]])
    assert table.splitlines() == [
        "| model | ppl |",
        "|---|---:|",
        "| bigram | 58.6 |",
        "| uniform | 1,801 |",
    ]


def test_special_characters_are_escaped():
    table = markdown_table(["token"], [["<s>"], ["a|b"]])
    assert table.splitlines()[2:] == ["| &lt;s> |", "| a\\|b |"]


def test_inf_and_percent_count_as_numbers():
    assert markdown_table(["x"], [["inf"], ["12%"], ["-1e-05"]]).splitlines()[1] == "|---:|"


def test_a_table_without_rows_has_a_header():
    assert markdown_table(["a", "b"], []).splitlines() == ["| a | b |", "|---|---|"]


def test_ragged_rows_are_rejected():
    with pytest.raises(ValueError, match="row 1 has 1 cells, the header has 2"):
        markdown_table(["a", "b"], [[1, 2], [3]])


def _render_cells(table: str) -> list[str]:
    """The cells' inner HTML as the book renders Markdown output (GFM with links, math)."""
    rendered = MarkdownIt("gfm-like").use(dollarmath_plugin).render(table)
    return re.findall(r"<td>(.*?)</td>", rendered)


def test_literal_cells_show_model_output_exactly():
    text = r"a __init__ *x* name.is <s> | $x$ `c` [l](u) \ end"
    plain, literal = _render_cells(markdown_table(["a", "b"], [["see name.is", Literal(text)]]))
    assert "<a href" in plain  # the renderer does turn such text into links
    assert "<" not in literal.replace("&lt;", "")  # no tags: no emphasis, link, code or math
    assert html.unescape(literal) == text


def test_ordinary_cells_keep_markdown_and_math():
    (cell,) = _render_cells(markdown_table(["a"], [[r"$B \cdot V$ and **bold**"]]))
    assert cell == '<span class="math inline">B \\cdot V</span> and <strong>bold</strong>'
