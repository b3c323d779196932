"""Few-shot prompts and their answers (llmcourse.prompting.fewshot)."""

import pytest

from llmcourse.data.tasks import Example
from llmcourse.prompting.fewshot import (
    FORMATS,
    STEP_BY_STEP,
    PromptFormat,
    demonstration,
    expected_completion,
    few_shot_prompt,
    parse_answer,
)

DOG = Example("reverse", "Reverse the letters.", "d o g", "g o d")
CAT = Example("reverse", "Reverse the letters.", "c a t", "t a c")
SUM = Example("arithmetic", "Calculate.", "7+5-3", "9", ("7+5=12", "12-3=9"))


def test_zero_one_and_few_shot_prompts():
    assert (
        few_shot_prompt(CAT, [], instruction=CAT.instruction)
        == "Reverse the letters.\nQ: c a t\nA:"
    )
    assert few_shot_prompt(CAT, [DOG]) == "Q: d o g\nA: g o d\nQ: c a t\nA:"
    assert few_shot_prompt(CAT, [DOG, DOG], "arrow", "Reverse.") == (
        "Reverse.\nd o g => g o d\nd o g => g o d\nc a t =>"
    )
    assert few_shot_prompt(CAT, [DOG], "io") == "Input: d o g\nOutput: g o d\nInput: c a t\nOutput:"
    custom = PromptFormat("x", "<{input}>", "[{output}]")
    assert few_shot_prompt(CAT, [DOG], custom) == "<d o g>[g o d]<c a t>"
    assert set(FORMATS) == {"qa", "arrow", "io"}


def test_chains_of_thought():
    assert demonstration(SUM, chain=True) == "Q: 7+5-3\nA: 7+5=12, 12-3=9. The answer is 9.\n"
    assert (
        few_shot_prompt(SUM, [], trigger=STEP_BY_STEP) == "Q: 7+5-3\nA: Let's think step by step."
    )
    assert expected_completion(SUM) == " 9\n"
    assert expected_completion(SUM, chain=True) == " 7+5=12, 12-3=9. The answer is 9.\n"
    assert expected_completion(DOG, "arrow") == " g o d\n"


@pytest.mark.parametrize(
    ("completion", "chain", "answer"),
    [
        (" g o d\nQ: c a t", False, "g o d"),
        ("   \n", False, None),
        (" 7+5=12, 12-3=9. The answer is 9.\nQ:", True, "9"),
        (" 7+5=12, 12-3=9. The answer is 9", True, "9"),
        (" 7+5=12, 12-3=9.", True, None),
        (" 7+5=12\nThe answer is 9.", True, None),  # not on the first line
    ],
)
def test_parse_answer(completion, chain, answer):
    assert parse_answer(completion, chain) == answer


def test_bad_arguments():
    with pytest.raises(ValueError, match="fmt must be one of"):
        few_shot_prompt(CAT, [DOG], "json")
    with pytest.raises(TypeError, match="Example objects"):
        few_shot_prompt(CAT, [("d o g", "g o d")])
