"""Markdown tables for the chapters."""

import pytest

from llmcourse.display import markdown_table


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
