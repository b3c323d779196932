"""Assertion helpers of grading tests: the kind of a value is checked before its numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmcourse.grading.expect import (
    describe,
    expect_array,
    expect_float,
    expect_tensor,
    expect_type,
)

EXPECTED = torch.zeros(2, 4, 16)


@pytest.mark.parametrize(
    ("got", "message"),
    [
        (
            torch.zeros(2, 4, 16, dtype=torch.float64),
            "expected the result to be Tensor[2, 4, 16] float32, got Tensor[2, 4, 16] float64",
        ),
        (torch.zeros(4, 2, 16), "got Tensor[4, 2, 16] float32"),
        (EXPECTED.tolist(), "got list of 2"),
        (None, "got NoneType"),
        (
            torch.full((2, 4, 16), math.nan),
            "has 128 NaN or infinite values of 128 where finite values were expected",
        ),
        (
            EXPECTED + 0.5,
            "differs at 128 of 128 positions; e.g. at index (0, 0, 0): got 0.5, expected 0",
        ),
    ],
)
def test_expect_tensor_names_what_was_expected(got, message):
    with pytest.raises(AssertionError) as caught:
        expect_tensor(got, like=EXPECTED)
    assert message in str(caught.value)


def test_expect_tensor_accepts_close_values_and_matching_infinities():
    like = torch.tensor([1.0, math.inf, -math.inf])
    expect_tensor(torch.tensor([1.0 + 1e-7, math.inf, -math.inf]), like=like)
    with pytest.raises(AssertionError, match="differs at 1 of 3"):
        expect_tensor(torch.tensor([1.0, -math.inf, -math.inf]), like=like)


def test_expect_array():
    like = np.arange(3, dtype=np.float64)
    expect_array(like.copy(), like=like)
    with pytest.raises(AssertionError, match="ndarray\\[3\\] float64, got ndarray\\[3\\] float32"):
        expect_array(like.astype(np.float32), like=like)


def test_expect_float():
    expect_float(2, 2.0)
    expect_float(math.inf, math.inf)
    with pytest.raises(AssertionError, match="to be float or int|to be int or float"):
        expect_float(True, 1.0)
    with pytest.raises(AssertionError, match="the finite number 1, got nan"):
        expect_float(math.nan, 1.0)
    with pytest.raises(AssertionError, match="expected P to be 0.5, got 0.6"):
        expect_float(0.6, 0.5, what="P")


def test_expect_type_and_describe():
    expect_type({}, dict)
    with pytest.raises(AssertionError, match="expected counts to be dict, got list of 0"):
        expect_type([], dict, what="counts")
    assert describe(np.zeros((2, 3), dtype=np.int8)) == "ndarray[2, 3] int8"
