"""A grammar with a large Zipfian lexicon and word-specific preferences: text with more
to learn than the course grammar, and still an exact entropy.

The course grammar (:func:`~llmcourse.data.grammar.english_grammar`) has 60 words and
a structure that a model of 15,000 parameters learns almost perfectly from a million
tokens (Chapter 10 measures it), which leaves nothing for scale to improve. Real text
differs in two ways that make scale pay: its words follow Zipf's law, so there is
always a tail of rare words and rare combinations left to learn from more data; and
what may follow a word depends on the word itself, which a model must memorise word
by word, so a larger model holds more of it (Hutter, 2021, shows that Zipf-distributed
facts give power-law learning curves).

:func:`lexical_grammar` has both, and stays an LL(1) probabilistic grammar
(:class:`~llmcourse.data.grammar.Grammar`), so its entropy is known exactly. Every
sentence is ``the SUBJECT VERB the OBJECT .``:

- the subject is one of ``n_nouns`` nouns, with Zipf probabilities ``~ 1 / rank^s``;
- each noun has its own ``verbs_per_noun`` verbs (a random subset of ``n_verbs``), with
  Zipf probabilities in a random order;
- each verb has its own ``objects_per_verb`` object nouns, likewise.

The words are invented (``bako``, ``tirun``, ...), drawn with the seed, so no model
knows them from elsewhere.
"""

from __future__ import annotations

import random

from llmcourse.checks import check_int, check_positive
from llmcourse.data.grammar import Alternative, Grammar

CONSONANTS, VOWELS = "bdfgklmnprstvz", "aeiou"


def invented_words(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct pronounceable words of two or three syllables."""
    words: set[str] = set()
    while len(words) < count:
        syllables = rng.choice((2, 2, 3))
        words.add("".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(syllables)))
    return sorted(words)


def zipf_weights(count: int, exponent: float) -> list[float]:
    """``1 / rank^exponent`` for ranks ``1 .. count``, normalised to sum to 1."""
    raw = [1 / rank**exponent for rank in range(1, count + 1)]
    return [w / sum(raw) for w in raw]


def lexical_grammar(
    n_nouns: int = 256,
    n_verbs: int = 256,
    verbs_per_noun: int = 32,
    objects_per_verb: int = 32,
    exponent: float = 1.1,
    seed: int = 0,
) -> Grammar:
    """The grammar described in the module docstring (the defaults: 512 words)."""
    for name, value in (("n_nouns", n_nouns), ("n_verbs", n_verbs)):
        check_int(name, value, minimum=2)
    check_int("verbs_per_noun", verbs_per_noun)
    check_int("objects_per_verb", objects_per_verb)
    if verbs_per_noun > n_verbs or objects_per_verb > n_nouns:
        raise ValueError("a word cannot prefer more words than there are")
    check_positive("exponent", exponent)
    rng = random.Random(seed)
    words = invented_words(n_nouns + n_verbs, rng)
    rng.shuffle(words)
    nouns, verbs = words[:n_nouns], words[n_nouns:]

    def preferences(candidates: list[str], count: int) -> list[tuple[float, str]]:
        """``count`` of the candidates in a random order, with Zipf weights."""
        return list(zip(zipf_weights(count, exponent), rng.sample(candidates, count), strict=True))

    rules: dict[str, list[Alternative]] = {
        "S": [(1.0, ("the", "SUBJECT", "."))],
        "SUBJECT": [
            (w, (noun, f"VP_{noun}"))
            for w, noun in zip(zipf_weights(n_nouns, exponent), nouns, strict=True)
        ],
    }
    for noun in nouns:
        rules[f"VP_{noun}"] = [
            (w, (verb, f"OBJ_{verb}")) for w, verb in preferences(verbs, verbs_per_noun)
        ]
    for verb in verbs:
        rules[f"OBJ_{verb}"] = [(1.0, ("the", f"NOUN_{verb}"))]
        rules[f"NOUN_{verb}"] = [(w, (noun,)) for w, noun in preferences(nouns, objects_per_verb)]
    return Grammar(rules)
