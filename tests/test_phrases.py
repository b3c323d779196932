import pytest

from llmcourse.data import english_grammar
from llmcourse.data.phrases import BIO_TAGS, chunking_examples, phrase_tags, qa_examples


@pytest.mark.parametrize(
    ("sentence", "tags"),
    [
        ("the big books sleep .", "B-SUBJ I-SUBJ I-SUBJ O O"),
        (
            "many writers with the book read the children .",
            "B-SUBJ I-SUBJ O B-PP I-PP O B-OBJ I-OBJ O",
        ),
        ("the children are red .", "B-SUBJ I-SUBJ O O O"),
    ],
)
def test_phrase_tags_by_hand(sentence, tags):
    assert phrase_tags(sentence.split()) == tags.split()


def test_phrase_tags_rejects_a_string():
    with pytest.raises(TypeError, match="split it first"):
        phrase_tags("the cat sleeps .")


def test_chunking_examples_are_well_formed_bio():
    examples = chunking_examples(300, seed=4)
    assert examples == chunking_examples(300, seed=4)
    assert [t for t, _ in examples] == [s.tokens for s in english_grammar().generate(300, seed=4)]
    seen = set()
    for tokens, tags in examples:
        assert len(tags) == len(tokens) and tags[0] == "B-SUBJ" and tags[-1] == "O"
        for previous, tag in zip(["O", *tags[:-1]], tags, strict=True):
            assert tag in BIO_TAGS
            if tag.startswith("I-"):  # an I- tag continues a phrase of the same role
                assert previous[2:] == tag[2:]
        seen |= set(tags)
    assert seen == set(BIO_TAGS)


def test_qa_examples_answer_is_the_phrase_ending_in_the_question():
    examples = qa_examples(200, seed=1)
    assert examples == qa_examples(200, seed=1)
    for ex in examples:
        assert ex.context.count(ex.question) == 1 and ex.context[ex.end] == ex.question
        tags = phrase_tags(ex.context)
        assert tags[ex.start].startswith("B-")
        assert all(tag.startswith("I-") for tag in tags[ex.start + 1 : ex.end + 1])
    with pytest.raises(ValueError, match="n must be"):
        qa_examples(-1)
