"""Grading tests for the Chapter 11 exercises (solutions/ch11_adapting.ipynb).

Each test carries ``pytest.mark.exercise(answer_id, points, hint=...)``; an answer's
points add up to those announced in the notebook's heading. Inputs are random, drawn
from the ``fresh_seed``; the expected values come from ``llmcourse.prompting.chat``
(the dialogue's labels), ``llmcourse.prompting.fewshot`` (the prompt),
``llmcourse.prompting.voting`` (the vote) and ``llmcourse.retrieval`` (BM25, recall@k),
each tested on its own (BM25 also against ``rank_bm25``), or from hand computations.
"""

from __future__ import annotations

import random

import pytest

from llmcourse.data.tasks import Example
from llmcourse.grading.expect import expect_float, expect_type
from llmcourse.prompting.chat import dialogue_ids
from llmcourse.prompting.fewshot import few_shot_prompt
from llmcourse.prompting.voting import majority_vote
from llmcourse.retrieval import BM25, recall_at_k

NOTEBOOK = "ch11_adapting"

# What each answer must write itself (see llmcourse.grading.offlimits), besides the
# package's functions named like the answers.
OFF_LIMITS = {
    "dialogue_labels": [
        "llmcourse.prompting.chat.dialogue_ids",
        "llmcourse.prompting.chat.encode_dialogue",
        "llmcourse.prompting.chat.sft_example",
    ],
    "few_shot_prompt": ["llmcourse.prompting.fewshot.demonstration"],
    "majority_vote": ["llmcourse.prompting.voting.vote_accuracy"],
    "bm25_scores": ["llmcourse.retrieval.bm25.BM25"],
    "recall_at_k": [],
}

SPECIALS = ("<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>")


def random_specials(rng: random.Random) -> dict[str, int]:
    return dict(zip(SPECIALS, rng.sample(range(1000, 1100), 4), strict=True))


def random_dialogue(rng: random.Random) -> list[tuple[str, list[int]]]:
    roles = ["system"] if rng.random() < 0.4 else []
    turns = rng.randint(1, 7)  # a dialogue may end with the user's message
    roles += ["user" if i % 2 == 0 else "assistant" for i in range(turns)]
    return [(role, [rng.randrange(900) for _ in range(rng.randint(0, 6))]) for role in roles]


def expected_labels(pieces, specials):
    ids, mask = dialogue_ids(pieces, specials)
    return ids, [i if m else -100 for i, m in zip(ids, mask, strict=True)]


# ---------------------------------------------------------------------- the labels
@pytest.mark.exercise(
    "dialogue_labels",
    points=1,
    hint="<|endoftext|> first; then each role token and its content; an assistant message "
    "also gets an <|endoftext|> after it. Labels copy the assistant's ids and that end token.",
)
def test_dialogue_labels_hand_example(student):
    specials = {"<|endoftext|>": 0, "<|system|>": 1, "<|user|>": 2, "<|assistant|>": 3}
    pieces = [("system", [9]), ("user", [10, 11]), ("assistant", [20])]
    ids, labels = student.call("dialogue_labels", pieces, specials)
    expect_type(ids, list, what="the ids")
    assert ids == [0, 1, 9, 2, 10, 11, 3, 20, 0], (
        f"expected ids [0, 1, 9, 2, 10, 11, 3, 20, 0], got {ids}"
    )
    expected = [-100] * 7 + [20, 0]
    assert labels == expected, f"expected labels {expected}, got {labels}"


@pytest.mark.exercise(
    "dialogue_labels",
    points=1.5,
    hint="Every assistant turn carries labels, not only the last one; the role tokens never do.",
)
def test_dialogue_labels_random(student, fresh_seed):
    rng = random.Random(fresh_seed)
    specials, pieces = random_specials(rng), random_dialogue(rng)
    got = student.call("dialogue_labels", pieces, specials)
    expected = expected_labels(pieces, specials)
    assert tuple(got) == expected, f"seed {fresh_seed}: expected {expected}, got {got}"


@pytest.mark.exercise(
    "dialogue_labels",
    points=0.5,
    hint="Raise ValueError when the roles do not alternate user, assistant, ... (after an "
    "optional system message), or when there is no user message.",
)
def test_dialogue_labels_bad_roles(student):
    specials = {"<|endoftext|>": 0, "<|system|>": 1, "<|user|>": 2, "<|assistant|>": 3}
    for roles in (["assistant"], ["user", "user"], ["user", "system"], ["system"], []):
        with pytest.raises(ValueError):
            student.call("dialogue_labels", [(r, [5]) for r in roles], specials)


# ---------------------------------------------------------------------- the prompt
@pytest.mark.exercise(
    "few_shot_prompt",
    points=2,
    hint='Each demonstration is "Q: input\\nA: output\\n"; the prompt ends with '
    '"Q: query\\nA:" and starts with the instruction and "\\n" unless it is None.',
)
def test_few_shot_prompt_random(student, fresh_seed):
    rng = random.Random(fresh_seed)

    def text() -> str:
        return " ".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 5)))

    instruction = None if rng.random() < 0.3 else rng.choice(["Sort the letters.", "Calculate."])
    demos = [(text(), text()) for _ in range(rng.randint(0, 5))]
    query = text()
    got = student.call("few_shot_prompt", instruction, demos, query)
    examples = [Example("t", "", x, y) for x, y in demos]
    expected = few_shot_prompt(Example("t", "", query, ""), examples, "qa", instruction)
    assert got == expected, f"seed {fresh_seed}: expected {expected!r}, got {got!r}"


# ------------------------------------------------------------------------ the vote
@pytest.mark.exercise(
    "majority_vote",
    points=1,
    hint="Count the answers that are not None; a tie goes to the tied answer that comes "
    "first in the list.",
)
def test_majority_vote_hand_examples(student):
    cases = [
        (["9", "12", "12", "9"], "9"),
        (["12", None, "9", "12"], "12"),
        ([None], None),
        ([], None),
    ]
    for answers, expected in cases:
        got = student.call("majority_vote", answers)
        assert got == expected, f"majority_vote({answers}): expected {expected!r}, got {got!r}"


@pytest.mark.exercise("majority_vote", points=1, hint="Ties are frequent here: the first one wins.")
def test_majority_vote_random(student, fresh_seed):
    rng = random.Random(fresh_seed)
    answers = [rng.choice(["1", "2", "3", None]) for _ in range(rng.randint(0, 9))]
    got = student.call("majority_vote", answers)
    expected = majority_vote(answers)
    assert got == expected, f"majority_vote({answers}): expected {expected!r}, got {got!r}"


# ------------------------------------------------------------------------- BM25
@pytest.mark.exercise(
    "bm25_scores",
    points=1,
    hint="idf(q) = ln((N - n + 0.5) / (n + 0.5)), with n the number of documents that "
    "contain q; the length normalisation uses |D| / avgdl.",
)
def test_bm25_hand_example(student):
    corpus = [["the", "cat"], ["the", "dog", "dog"], ["a", "bird"]]
    got = student.call("bm25_scores", corpus, ["dog"])
    expected = BM25(corpus).scores(["dog"]).tolist()  # 0, ln(2.5/1.5) 2 (2.5) / (2 + ...), 0
    expect_type(got, list, what="the scores")
    for g, e in zip(got, expected, strict=True):
        expect_float(g, e, rel=1e-9, abs=1e-12, what="a score")


@pytest.mark.exercise(
    "bm25_scores",
    points=2,
    hint="A word in more than half of the documents has a negative idf: replace it by "
    "epsilon times the mean idf of all the words (computed before the replacement). A "
    "repeated query word counts each time.",
)
def test_bm25_random(student, fresh_seed):
    rng = random.Random(fresh_seed)
    vocabulary = [f"w{i}" for i in range(rng.randint(2, 12))]
    corpus = [
        [rng.choice(vocabulary) for _ in range(rng.randint(1, 12))]
        for _ in range(rng.randint(1, 15))
    ]
    query = [rng.choice([*vocabulary, "zzz"]) for _ in range(rng.randint(1, 5))]
    k1, b = rng.uniform(0.5, 2.0), rng.uniform(0.0, 1.0)
    got = student.call("bm25_scores", corpus, query, k1, b)
    expected = BM25(corpus, k1=k1, b=b).scores(query).tolist()
    assert len(got) == len(expected), f"expected {len(expected)} scores, got {len(got)}"
    for g, e in zip(got, expected, strict=True):
        expect_float(g, e, rel=1e-9, abs=1e-12, what=f"a score (seed {fresh_seed})")


# ------------------------------------------------------------------------ recall@k
@pytest.mark.exercise(
    "recall_at_k",
    points=1.5,
    hint="A question counts once if any of its relevant ids is among the first k of its ranking.",
)
def test_recall_at_k_random(student, fresh_seed):
    rng = random.Random(fresh_seed)
    n_items = rng.randint(1, 12)
    rankings = [rng.sample(range(n_items), n_items) for _ in range(rng.randint(1, 10))]
    relevant = [rng.sample(range(n_items + 3), rng.randint(1, 3)) for _ in rankings]
    k = rng.randint(1, n_items)
    got = student.call("recall_at_k", rankings, relevant, k)
    expected = recall_at_k(rankings, [set(r) for r in relevant], k)
    expect_float(got, expected, rel=1e-12, what=f"recall@{k} (seed {fresh_seed})")


@pytest.mark.exercise(
    "recall_at_k", points=0.5, hint="Raise ValueError when a ranking is shorter than k."
)
def test_recall_at_k_short_ranking(student):
    with pytest.raises(ValueError):
        student.call("recall_at_k", [[1, 2], [3]], [[1], [3]], 2)
