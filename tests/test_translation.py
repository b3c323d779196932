"""The synthetic translation task: the lexicon, the reordering rules, pairs and batches."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import torch

from llmcourse.data import english_grammar
from llmcourse.data.translation import (
    LEXICON,
    SPECIALS,
    Pair,
    batches,
    make_batch,
    source_vocab,
    target_vocab,
    translate,
    translation_pairs,
)
from llmcourse.text import BOS, EOS, PAD


def test_the_lexicon_translates_exactly_the_grammar_words_one_to_one():
    assert set(LEXICON) == set(english_grammar().words)
    assert len(set(LEXICON.values())) == len(LEXICON)


@pytest.mark.parametrize(
    ("english", "grammish"),
    [
        # a transitive verb follows its object; adjectives follow their noun
        ("the big cat sees a small dog .", "lo miro grom un kanu pit vidi ."),
        # an intransitive verb follows its adverb, and stays put without one
        ("the dogs run today .", "lo kanus hodi kurin ."),
        ("every child laughs .", "cada nenu ridi ."),
        # the copula follows its adjective
        ("many happy birds are quiet .", "muti fikos lusa sim esen ."),
        # two adjectives keep their order after the noun
        ("the big red cat sleeps .", "lo miro grom ruda dormi ."),
        # a prepositional phrase, and a relative clause with its own reordering
        (
            "the writer of the small books that reads the new table is clever .",
            "lo sela da lo libes pit ke lo pesa nova legi vek es .",
        ),
        (
            "the cats that see some dogs sleep quietly .",
            "lo miros ke kai kanus vidin sito dormin .",
        ),
    ],
)
def test_translate_hand_examples(english, grammish):
    assert " ".join(translate(english.split())) == grammish


def test_translate_is_a_reordering_of_the_word_for_word_translation():
    for sample in english_grammar().generate(300, seed=3):
        out = translate(sample.tokens)
        assert Counter(out) == Counter(LEXICON[w] for w in sample.tokens)
        assert out[-1] == "."


def test_translated_verbs_come_after_their_objects():
    verbs = {LEXICON[w] for w in ("sees", "see", "finds", "find")}
    determiners = {LEXICON[w] for w in ("the", "a", "some")}
    seen = 0
    for sample in english_grammar().generate(300, seed=4):
        out = translate(sample.tokens)
        for i, word in enumerate(out):
            if word in verbs:
                seen += 1
                # the object noun phrase (determiner, noun, adjectives) ends right here
                assert any(out[j] in determiners for j in range(max(0, i - 6), i)), out
                assert i == 0 or out[i - 1] not in determiners
    assert seen > 20


def test_translate_rejects_strings_and_unknown_words():
    with pytest.raises(TypeError, match="split it first"):
        translate("the cat sleeps .")
    with pytest.raises(ValueError, match="'zebra'"):
        translate(["the", "zebra", "sleeps", "."])


def test_translation_pairs_are_repeatable_and_respect_the_length_range():
    a = translation_pairs(50, seed=7, min_len=6, max_len=9)
    assert a == translation_pairs(50, seed=7, min_len=6, max_len=9)
    assert a != translation_pairs(50, seed=8, min_len=6, max_len=9)
    assert all(6 <= len(p.source) <= 9 for p in a)
    assert all(p.target == translate(p.source) for p in a)


def test_translation_pairs_without_a_range_follow_the_grammar():
    pairs = translation_pairs(20, seed=5)
    assert [p.source for p in pairs] == [s.tokens for s in english_grammar().generate(20, seed=5)]


def test_balanced_pairs_have_equally_many_sentences_of_each_length():
    pairs = translation_pairs(32, seed=1, min_len=4, max_len=10, balanced=True)
    counts = Counter(len(p.source) for p in pairs)
    assert counts == {4: 5, 5: 5, 6: 5, 7: 5, 8: 4, 9: 4, 10: 4}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n=-1), "n must be"),
        (dict(n=1, min_len=0), "min_len"),
        (dict(n=1, min_len=5, max_len=4), "max_len"),
        (dict(n=1, balanced=True), "needs a max_len"),
        (dict(n=1, min_len=200, max_len=200), "widen the length range"),
    ],
)
def test_translation_pairs_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        translation_pairs(**kwargs)


def test_vocabularies_share_the_special_ids_and_cover_the_lexicon():
    src, tgt = source_vocab(), target_vocab()
    for vocab, words in ((src, LEXICON), (tgt, LEXICON.values())):
        assert vocab.itos[:4] == list(SPECIALS)
        assert vocab.stoi[PAD] == 0
        assert set(vocab.itos[4:]) == set(words)
        assert len(vocab) == 4 + len(LEXICON)


def test_make_batch_pads_shifts_and_masks():
    src_vocab, tgt_vocab = source_vocab(), target_vocab()
    pairs = [
        Pair(["the", "cat", "sleeps", "."], ["lo", "miro", "dormi", "."]),
        Pair(["every", "dog", "."], ["cada", "kanu", "."]),
    ]
    b = make_batch(pairs, src_vocab, tgt_vocab)
    assert b.src.shape == b.src_mask.shape == (2, 4)
    assert b.tgt_in.shape == b.tgt_out.shape == (2, 5)
    assert b.src.dtype == b.tgt_in.dtype == b.tgt_out.dtype == torch.long
    assert b.src_mask.tolist() == [[True] * 4, [True, True, True, False]]
    assert src_vocab.decode(b.src[1]) == ["every", "dog", ".", PAD]
    assert tgt_vocab.decode(b.tgt_in[0]) == [BOS, "lo", "miro", "dormi", "."]
    assert tgt_vocab.decode(b.tgt_out[0]) == ["lo", "miro", "dormi", ".", EOS]
    assert tgt_vocab.decode(b.tgt_in[1]) == [BOS, "cada", "kanu", ".", PAD]
    assert tgt_vocab.decode(b.tgt_out[1]) == ["cada", "kanu", ".", EOS, PAD]
    # teacher forcing: the input at step t + 1 is the output of step t
    real = b.tgt_in[:, 1:] != 0
    assert torch.equal(b.tgt_in[:, 1:][real], b.tgt_out[:, :-1][real])


def test_make_batch_rejects_empty_input():
    with pytest.raises(ValueError, match="no pairs"):
        make_batch([], source_vocab(), target_vocab())
    with pytest.raises(ValueError, match="at least one word"):
        make_batch([Pair([], ["."])], source_vocab(), target_vocab())


def test_batches_visit_every_pair_once_per_epoch_in_a_seeded_order():
    pairs = translation_pairs(12, seed=2)
    src_vocab, tgt_vocab = source_vocab(), target_vocab()

    def epoch_sources(seed):
        stream = batches(pairs, 4, src_vocab, tgt_vocab, seed=seed)
        rows = []
        for b in itertools.islice(stream, 3):
            for ids, mask in zip(b.src, b.src_mask, strict=True):
                rows.append(tuple(src_vocab.decode(ids[mask])))
        return rows

    first = epoch_sources(0)
    assert sorted(first) == sorted(tuple(p.source) for p in pairs)
    assert first == epoch_sources(0)
    assert first != epoch_sources(1)


@pytest.mark.parametrize("batch_size", [0, 13, 2.0])
def test_batches_rejects_bad_batch_sizes(batch_size):
    pairs = translation_pairs(12, seed=2)
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(pairs, batch_size, source_vocab(), target_vocab()))
