"""The gold reward: right answers first, then shorter replies; read from a rollout."""

from __future__ import annotations

import pytest
import torch

from llmcourse.alignment.gold import GoldReward, gold_reward, is_correct
from llmcourse.alignment.rollout import Rollout
from llmcourse.data.tasks import Example
from llmcourse.models.pretrained import load_pretrained

REVERSE = Example("reverse", "Reverse the letters.", "d o g", "g o d")
SUM = Example("arithmetic", "Work it out.", "7+5-3", "9", ("7+5=12", "12-3=9"))


@pytest.fixture(scope="module")
def tokenizer():
    return load_pretrained("small")[1]


def test_a_reply_is_right_when_its_answer_is_the_output():
    assert is_correct(REVERSE, "g o d") and is_correct(REVERSE, " g o d \nmore text")
    assert not is_correct(REVERSE, "d o g") and not is_correct(REVERSE, "")
    # with steps, the answer is what follows "The answer is" on the first line
    assert is_correct(SUM, "7+5=12, 12-3=9. The answer is 9.")
    assert is_correct(SUM, "7+5=13, 12-3=9. The answer is 9.")  # only the answer counts
    assert not is_correct(SUM, "9") and not is_correct(SUM, "The answer is 8.")


def test_gold_reward_is_correctness_minus_a_price_per_token():
    assert gold_reward(REVERSE, "g o d", 6) == pytest.approx(1 - 6 * 0.01)
    assert gold_reward(REVERSE, "d o g", 6) == pytest.approx(-6 * 0.01)
    assert gold_reward(REVERSE, "g o d", 6, cost=0) == 1.0  # the verifiable reward
    # a right answer always beats a wrong one of the same length; a shorter reply wins a tie
    assert gold_reward(REVERSE, "g o d", 30) > gold_reward(REVERSE, "x", 30)
    assert gold_reward(SUM, "The answer is 9.", 5) > gold_reward(SUM, "7+5=12. The answer is 9.", 9)
    with pytest.raises(ValueError, match="cost"):
        gold_reward(REVERSE, "g o d", 6, cost=-1)


def rollout_of(tokenizer, prompts, replies, index, finished):
    end = tokenizer.specials["<|endoftext|>"]
    rows = []
    for i, reply, done in zip(index, replies, finished, strict=True):
        response = tokenizer.encode(reply) + ([end] if done else [])
        rows.append((prompts[i], response))
    width = max(len(p) + len(r) for p, r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for row, (p, r) in enumerate(rows):
        ids[row, : len(p) + len(r)] = torch.tensor(p + r)
        mask[row, len(p) : len(p) + len(r)] = True
    return Rollout(ids, mask, torch.tensor(index), torch.tensor(finished))


def test_gold_reward_of_a_rollout_scores_each_row_against_its_prompts_example(tokenizer):
    prompts = [tokenizer.encode("reverse d o g"), tokenizer.encode("7+5-3")]
    replies = ["g o d", "d o g", "7+5=12, 12-3=9. The answer is 9.", "The answer is 9."]
    rollout = rollout_of(tokenizer, prompts, replies, [0, 0, 1, 1], [True, False, True, True])
    reward = GoldReward(tokenizer, [REVERSE, SUM])
    got = reward(rollout)
    lengths = rollout.response_lengths.tolist()  # the end token counts as a reply token
    assert lengths[0] == len(tokenizer.encode("g o d")) + 1
    expected = [1 - 0.01 * lengths[0], -0.01 * lengths[1], 1 - 0.01 * lengths[2]]
    expected.append(1 - 0.01 * lengths[3])
    torch.testing.assert_close(got, torch.tensor(expected))
    assert got[3] > got[2]  # the same right answer, shorter
    torch.testing.assert_close(
        GoldReward(tokenizer, [REVERSE, SUM], cost=0)(rollout), torch.tensor([1.0, 0, 1, 1])
    )


def test_gold_reward_rejects_a_rollout_it_has_no_example_for(tokenizer):
    rollout = rollout_of(tokenizer, [[1], [2]], ["a", "b"], [0, 1], [True, True])
    with pytest.raises(ValueError, match="answers 2 prompts, but there are 1 examples"):
        GoldReward(tokenizer, [REVERSE])(rollout)
    with pytest.raises(ValueError, match="examples must be"):
        GoldReward(tokenizer, [])
