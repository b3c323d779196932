"""Majority votes (llmcourse.prompting.voting)."""

import pytest

from llmcourse.prompting.voting import majority_vote, vote_accuracy


def test_majority_vote_counts_ignores_none_and_breaks_ties_by_first_appearance():
    assert majority_vote(["9", "12", "9"]) == "9"
    assert majority_vote(["12", None, "9", "12", "9"]) == "12"
    assert majority_vote(["9", "12", "12", "9"]) == "9"
    assert majority_vote([None, None, "3"]) == "3"
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None
    with pytest.raises(TypeError, match="not one str"):
        majority_vote("999")


def test_vote_accuracy_uses_the_first_k_samples():
    samples = [["1", "2", "2"], ["5", "5", "6"], [None, "3", "3"]]
    answers = ["2", "5", "3"]
    assert vote_accuracy(samples, answers, 1) == pytest.approx(1 / 3)
    assert vote_accuracy(samples, answers, 2) == pytest.approx(2 / 3)  # ["1", "2"] -> "1"
    assert vote_accuracy(samples, answers, 3) == 1.0
    with pytest.raises(ValueError, match="fewer than k=4 samples"):
        vote_accuracy(samples, answers, 4)
    with pytest.raises(ValueError, match="one list of samples per answer"):
        vote_accuracy(samples, answers[:2], 1)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        vote_accuracy(samples, answers, 0)
