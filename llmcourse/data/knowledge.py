"""A synthetic knowledge base: invented animals, their facts, questions and articles.

No model can know these facts without being told: the names are made up (``zedovi``,
``tokibo``), and each animal's colour, town and food are drawn at random. That makes
the knowledge base the test bed of retrieval (Chapter 11): a fact that the model never
saw can be answered only by reading it from a retrieved passage.

- :func:`knowledge_base` -- the animals, the same for the same seed; the first
  ``n_seen`` are the ones training may show (:func:`split_entities`), the rest are
  never in any training data.
- :func:`passage` -- an animal's facts as three sentences; :func:`question` -- a
  question about one attribute, with its answer.
- :func:`articles` -- the passages grouped into longer documents, the corpus that
  retrieval chunks and indexes (:mod:`llmcourse.retrieval`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from llmcourse.checks import check_choice, check_int, check_int_in
from llmcourse.data.lexicon import invented_words
from llmcourse.data.tasks import COLOURS

ATTRIBUTES = ("colour", "town", "food")
FOODS = ("seeds", "fish", "apples", "bread", "honey", "rice", "nuts", "grass")
KINDS = ("cat", "dog", "bird")
N_TOWNS = 12
N_ENTITIES, N_SEEN = 400, 250
KB_SEED = 0

MAX_ENTITIES = 2000


@dataclass(frozen=True)
class Entity:
    """An invented animal: its name, its kind and one value of each attribute."""

    name: str
    kind: str
    colour: str
    town: str
    food: str

    def value(self, attribute: str) -> str:
        """The value of ``attribute`` (one of :data:`ATTRIBUTES`)."""
        check_choice("attribute", attribute, ATTRIBUTES)
        return getattr(self, attribute)


@cache
def _names(seed: int) -> tuple[str, ...]:
    """Distinct invented words (:func:`~llmcourse.data.lexicon.invented_words`) in a seeded
    order: the first :data:`N_TOWNS` name the towns, the rest the animals."""
    rng = random.Random(f"names-{seed}")
    words = invented_words(N_TOWNS + MAX_ENTITIES, rng)
    rng.shuffle(words)
    return tuple(words)


@cache
def towns(seed: int = KB_SEED) -> tuple[str, ...]:
    """The :data:`N_TOWNS` invented town names (capitalised) of the knowledge base."""
    return tuple(name.capitalize() for name in _names(seed)[:N_TOWNS])


def knowledge_base(n: int = N_ENTITIES, seed: int = KB_SEED) -> list[Entity]:
    """``n`` (at most :data:`MAX_ENTITIES`) animals with distinct invented names and random
    facts; the same list for the same ``seed``, and the first ``m`` of
    ``knowledge_base(n)`` are ``knowledge_base(m)``."""
    check_int_in("n", n, 1, MAX_ENTITIES)
    return list(_knowledge_base(seed)[:n])


@cache
def _knowledge_base(seed: int) -> tuple[Entity, ...]:
    rng = random.Random(f"entities-{seed}")
    town_names = towns(seed)
    return tuple(
        Entity(
            name, rng.choice(KINDS), rng.choice(COLOURS), rng.choice(town_names), rng.choice(FOODS)
        )
        for name in _names(seed)[N_TOWNS:]
    )


def split_entities(
    entities: list[Entity] | None = None, n_seen: int = N_SEEN
) -> tuple[list[Entity], list[Entity]]:
    """``(seen, unseen)``: the first ``n_seen`` animals, whose facts training may show, and
    the others, which no training data contains."""
    entities = knowledge_base() if entities is None else entities
    check_int("n_seen", n_seen, minimum=0)
    return entities[:n_seen], entities[n_seen:]


def passage(entity: Entity) -> str:
    """``"The zedovi is a blue dog. It lives in Fomi. It eats nuts."``"""
    return (
        f"The {entity.name} is a {entity.colour} {entity.kind}. It lives in {entity.town}. "
        f"It eats {entity.food}."
    )


def question(entity: Entity, attribute: str) -> tuple[str, str]:
    """``(question, answer)`` about one attribute: ``("What colour is the zedovi?",
    "blue")``."""
    check_choice("attribute", attribute, ATTRIBUTES)
    text = {
        "colour": f"What colour is the {entity.name}?",
        "town": f"Where does the {entity.name} live?",
        "food": f"What does the {entity.name} eat?",
    }[attribute]
    return text, entity.value(attribute)


def chance(attribute: str) -> float:
    """The accuracy of a uniform guess among the possible values of ``attribute``."""
    check_choice("attribute", attribute, ATTRIBUTES)
    return 1 / {"colour": len(COLOURS), "town": N_TOWNS, "food": len(FOODS)}[attribute]


def articles(
    entities: list[Entity], per_article: int = 4, seed: int = KB_SEED
) -> list[tuple[str, list[str]]]:
    """The passages shuffled and joined into documents of ``per_article`` animals (the last
    may have fewer): ``[(text, [names of its animals]), ...]``."""
    check_int("per_article", per_article)
    order = list(entities)
    random.Random(f"articles-{seed}").shuffle(order)
    documents = []
    for start in range(0, len(order), per_article):
        group = order[start : start + per_article]
        documents.append((" ".join(passage(e) for e in group), [e.name for e in group]))
    return documents
