"""A synthetic translation task: the course's toy English into a made-up language.

The source side is a sentence of :func:`~llmcourse.data.english_grammar`. The target
language, call it *Grammish*, differs from English in two ways that a translator has
to learn:

- **Words.** Every English word has exactly one Grammish word (:data:`LEXICON`), with
  regular morphology: plural nouns add ``-s`` (``miro`` cat, ``miros`` cats, also
  ``nenus`` for *children*) and plural verbs add ``-n`` (``vidi`` sees, ``vidin`` see).
- **Word order.** Adjectives follow their noun (*the big cat* -> ``lo miro grom``), and
  a verb follows its complement: its object (*sees a dog* -> ``un kanu vidi``), its
  adverb (*runs today* -> ``hodi kuri``) or, for *is/are*, its adjective (*is happy* ->
  ``lusa es``).

So *the big cat sees a small dog .* becomes ``lo miro grom un kanu pit vidi .``: the
same number of words, but the alignment between the two sentences crosses itself. A
model has to carry every word of the source to the right place in the output, which
becomes harder the longer the sentence is; the length of the inputs is controlled by
``min_len`` and ``max_len`` (in words, the final "." included).

Both vocabularies start with the same four special tokens, so ``<pad>`` is id 0 on
both sides. A :class:`Batch` holds the padded source with its mask and the target
shifted for teacher forcing: ``tgt_in`` starts with ``<s>``, ``tgt_out`` ends with
``</s>``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from llmcourse.data.grammar import english_grammar
from llmcourse.text.words import BOS, EOS, PAD, UNK, Vocab

SPECIALS = (PAD, UNK, BOS, EOS)

LEXICON: dict[str, str] = {
    # determiners, the relative pronoun, the copula, adverbs, punctuation
    "the": "lo", "a": "un", "some": "kai", "every": "cada", "many": "muti",
    "that": "ke", "is": "es", "are": "esen", "quietly": "sito", "today": "hodi", ".": ".",
    # nouns, singular and plural
    "writer": "sela", "writers": "selas", "cat": "miro", "cats": "miros",
    "dog": "kanu", "dogs": "kanus", "student": "tavi", "students": "tavis",
    "teacher": "doru", "teachers": "dorus", "book": "libe", "books": "libes",
    "table": "pesa", "tables": "pesas", "garden": "huma", "gardens": "humas",
    "bird": "fiko", "birds": "fikos", "child": "nenu", "children": "nenus",
    # adjectives and prepositions
    "big": "grom", "small": "pit", "happy": "lusa", "red": "ruda", "quiet": "sim",
    "clever": "vek", "new": "nova", "of": "da", "near": "po", "behind": "zat", "with": "kon",
    # verbs, singular and plural
    "sleeps": "dormi", "sleep": "dormin", "runs": "kuri", "run": "kurin",
    "laughs": "ridi", "laugh": "ridin", "waits": "espi", "wait": "espin",
    "sees": "vidi", "see": "vidin", "likes": "ami", "like": "amin",
    "reads": "legi", "read": "legin", "finds": "trovi", "find": "trovin",
    "opens": "apri", "open": "aprin",
}  # fmt: skip


_RULES = english_grammar().rules


def _words_of(*nonterminals: str) -> frozenset[str]:
    """The words that the grammar's one-word nonterminals rewrite to."""
    return frozenset(s for a in nonterminals for _, symbols in _RULES[a] for s in symbols)


DETERMINERS = frozenset({"the", "a", "some", "every", "many"})
NOUNS = _words_of("N_SG", "N_PL")
ADJECTIVES = _words_of("ADJ")
ADVERBS = frozenset({"quietly", "today"})
VERBS = _words_of("V_INTR_SG", "V_INTR_PL", "V_TR_SG", "V_TR_PL") | {"is", "are"}


def _adjectives_after_nouns(words: list[str]) -> list[str]:
    """Move every run of adjectives that precedes a noun to just after that noun."""
    out: list[str] = []
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and words[j] in ADJECTIVES:
            j += 1
        if j > i and j < len(words) and words[j] in NOUNS:
            out += [words[j]] + words[i:j]
            i = j + 1
        else:
            out.append(words[i])
            i += 1
    return out


def _complement_end(words: list[str], i: int) -> int:
    """The end (exclusive) of the complement of the verb at ``i``; ``i + 1`` if it has none.

    The complement is an object noun phrase (a determiner, its noun and the adjectives
    that now follow the noun), an adverb, or the adjective after *is*/*are*.
    """
    j = i + 1
    if j < len(words) and words[j] in DETERMINERS:
        j += 1
        while j < len(words) and words[j] not in NOUNS:
            j += 1
        j += 1
        while j < len(words) and words[j] in ADJECTIVES:
            j += 1
        return min(j, len(words))
    if j < len(words) and (words[j] in ADVERBS or words[j] in ADJECTIVES):
        return j + 1
    return j


def _verbs_after_complements(words: list[str]) -> list[str]:
    """Move every verb to just after its complement (run after the adjectives moved)."""
    out: list[str] = []
    i = 0
    while i < len(words):
        if words[i] in VERBS:
            end = _complement_end(words, i)
            out += words[i + 1 : end] + [words[i]]
            i = end
        else:
            out.append(words[i])
            i += 1
    return out


def translate(tokens: Sequence[str]) -> list[str]:
    """Translate an English token sequence of the grammar into Grammish, word by word.

    >>> " ".join(translate("the big cat sees a small dog .".split()))
    'lo miro grom un kanu pit vidi .'

    Raises:
        TypeError: ``tokens`` is a string rather than a sequence of words.
        ValueError: a word that is not in :data:`LEXICON`.
    """
    if isinstance(tokens, str):
        raise TypeError("tokens must be a sequence of words, not a str; split it first")
    unknown = sorted({t for t in tokens if t not in LEXICON})
    if unknown:
        raise ValueError(f"no translation for the words {unknown}")
    reordered = _verbs_after_complements(_adjectives_after_nouns(list(tokens)))
    return [LEXICON[w] for w in reordered]


@dataclass(frozen=True)
class Pair:
    """An English sentence and its Grammish translation, as lists of words."""

    source: list[str]
    target: list[str]


def translation_pairs(
    n: int, seed: int = 0, min_len: int = 1, max_len: int | None = None, balanced: bool = False
) -> list[Pair]:
    """``n`` grammar sentences of ``min_len`` to ``max_len`` words with their translations.

    Sentences are drawn with ``random.Random(seed)`` and those outside the length range
    are skipped, so the pairs are the same for the same arguments. The grammar makes
    short sentences far more often than long ones (about 1 in 150 has 20 words or
    more); ``balanced=True`` keeps equally many sentences of every length in the range
    (the first lengths get one more when ``n`` does not divide evenly), in the order
    they were drawn.

    Raises:
        ValueError: ``n < 0``, ``min_len < 1``, ``max_len < min_len``, ``balanced``
            without ``max_len``, or a range that yields fewer than ``n`` sentences in
            ``1000 * n + 10_000`` draws.
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not isinstance(min_len, int) or min_len < 1:
        raise ValueError(f"min_len must be an integer >= 1, got {min_len!r}")
    if max_len is not None and (not isinstance(max_len, int) or max_len < min_len):
        raise ValueError(f"max_len must be an integer >= min_len = {min_len}, got {max_len!r}")
    if balanced and max_len is None:
        raise ValueError("balanced=True needs a max_len")
    if balanced:
        k = max_len - min_len + 1
        quota = {
            length: n // k + (i < n % k) for i, length in enumerate(range(min_len, max_len + 1))
        }
    grammar, rng = english_grammar(), random.Random(seed)
    pairs: list[Pair] = []
    draws = 1000 * n + 10_000
    for _ in range(draws):
        if len(pairs) == n:
            return pairs
        tokens = grammar.sample(rng).tokens
        if len(tokens) < min_len or (max_len is not None and len(tokens) > max_len):
            continue
        if balanced:
            if quota[len(tokens)] == 0:
                continue
            quota[len(tokens)] -= 1
        pairs.append(Pair(tokens, translate(tokens)))
    if len(pairs) < n:
        raise ValueError(
            f"only {len(pairs)} of {n} sentences of {min_len} to {max_len} words "
            f"in {draws} draws; widen the length range"
        )
    return pairs


def source_vocab() -> Vocab:
    """The English vocabulary: the four specials (``<pad>`` = 0), then the grammar's words."""
    return Vocab(sorted(LEXICON), specials=SPECIALS)


def target_vocab() -> Vocab:
    """The Grammish vocabulary: the four specials (``<pad>`` = 0), then the lexicon's words."""
    return Vocab(sorted(LEXICON.values()), specials=SPECIALS)


@dataclass
class Batch:
    """A padded batch of translation pairs.

    Attributes:
        src: ``(batch, src_len)`` source ids, right-padded with ``<pad>``.
        src_mask: ``(batch, src_len)`` bool, True at real source tokens.
        tgt_in: ``(batch, tgt_len)`` the decoder's inputs, ``<s> y_1 .. y_m`` then padding.
        tgt_out: ``(batch, tgt_len)`` the tokens to predict, ``y_1 .. y_m </s>`` then
            padding; ``tgt_len`` is the longest target plus one.
    """

    src: torch.Tensor
    src_mask: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor


def _pad(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long)


def make_batch(pairs: Sequence[Pair], src_vocab: Vocab, tgt_vocab: Vocab) -> Batch:
    """Encode and pad ``pairs`` into a :class:`Batch`.

    Raises:
        ValueError: no pairs, or a pair with an empty source.
    """
    if len(pairs) == 0:
        raise ValueError("cannot make a batch of no pairs")
    if any(len(p.source) == 0 for p in pairs):
        raise ValueError("every source sentence needs at least one word")
    src_pad, tgt_pad = src_vocab.stoi[PAD], tgt_vocab.stoi[PAD]
    bos, eos = tgt_vocab.stoi[BOS], tgt_vocab.stoi[EOS]
    src = _pad([src_vocab.encode(p.source) for p in pairs], src_pad)
    targets = [tgt_vocab.encode(p.target) for p in pairs]
    return Batch(
        src=src,
        src_mask=src != src_pad,
        tgt_in=_pad([[bos] + t for t in targets], tgt_pad),
        tgt_out=_pad([t + [eos] for t in targets], tgt_pad),
    )


def batches(
    pairs: Sequence[Pair], batch_size: int, src_vocab: Vocab, tgt_vocab: Vocab, seed: int = 0
) -> Iterator[Batch]:
    """Endless random batches: each epoch visits every pair once, in a fresh seeded order.

    Raises:
        ValueError: ``batch_size`` not in ``[1, len(pairs)]``.
    """
    if not isinstance(batch_size, int) or not 1 <= batch_size <= len(pairs):
        raise ValueError(
            f"batch_size must be an integer in [1, {len(pairs)}] (the number of pairs), "
            f"got {batch_size!r}"
        )
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(pairs), generator=generator).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            chunk = order[start : start + batch_size]
            yield make_batch([pairs[i] for i in chunk], src_vocab, tgt_vocab)
