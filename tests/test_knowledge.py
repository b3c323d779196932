"""The synthetic knowledge base (llmcourse.data.knowledge)."""

import pytest

from llmcourse.data.knowledge import (
    ATTRIBUTES,
    COLOURS,
    FOODS,
    KINDS,
    MAX_ENTITIES,
    N_ENTITIES,
    N_SEEN,
    N_TOWNS,
    articles,
    chance,
    knowledge_base,
    passage,
    question,
    split_entities,
    towns,
)
from llmcourse.data.translation import LEXICON


def test_entities_have_distinct_invented_names_and_facts_from_their_lists():
    entities = knowledge_base()
    assert len(entities) == N_ENTITIES
    names = [e.name for e in entities]
    assert len(set(names)) == len(names)
    assert not set(names) & set(LEXICON)  # not a word of the grammar
    assert {e.kind for e in entities} == set(KINDS)
    assert {e.colour for e in entities} == set(COLOURS)
    assert {e.food for e in entities} == set(FOODS)
    assert {e.town for e in entities} == set(towns()) and len(towns()) == N_TOWNS


def test_the_knowledge_base_is_seeded_and_grows_by_appending():
    assert knowledge_base() == knowledge_base()
    assert knowledge_base(50) == knowledge_base()[:50]
    assert knowledge_base(seed=1) != knowledge_base()
    knowledge_base().clear()  # a caller's list is its own
    assert len(knowledge_base()) == N_ENTITIES


def test_split_passage_and_questions():
    seen, unseen = split_entities()
    assert len(seen) == N_SEEN and len(unseen) == N_ENTITIES - N_SEEN
    entity = seen[0]
    text = passage(entity)
    assert text == (
        f"The {entity.name} is a {entity.colour} {entity.kind}. It lives in {entity.town}. "
        f"It eats {entity.food}."
    )
    for attribute in ATTRIBUTES:
        q, a = question(entity, attribute)
        assert entity.name in q and a == entity.value(attribute) and a in text
    assert question(entity, "colour")[0] == f"What colour is the {entity.name}?"
    assert chance("town") == pytest.approx(1 / N_TOWNS)
    with pytest.raises(ValueError, match="attribute must be one of"):
        question(entity, "size")


def test_articles_hold_every_passage_once():
    entities = knowledge_base()
    documents = articles(entities, per_article=4)
    assert len(documents) == N_ENTITIES // 4
    names = [n for _, group in documents for n in group]
    assert sorted(names) == sorted(e.name for e in entities)
    by_name = {e.name: e for e in entities}
    for text, group in documents:
        assert text == " ".join(passage(by_name[n]) for n in group)


def test_names_are_invented_words_and_the_size_is_checked():
    names = [e.name for e in knowledge_base()] + [t.lower() for t in towns()]
    assert len(set(names)) == len(names)  # no animal is named like a town
    assert all(n.isalpha() and n.islower() and n[-1] in "aeiou" for n in names)
    assert len(knowledge_base(MAX_ENTITIES)) == MAX_ENTITIES
    for n in (0, MAX_ENTITIES + 1):
        with pytest.raises(ValueError, match="n must be an integer in"):
            knowledge_base(n)
