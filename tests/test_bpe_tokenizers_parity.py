"""Parity of llmcourse.text.bpe with Hugging Face ``tokenizers`` (an independent Rust BPE).

Encoding: our merges and vocabulary are loaded into a ``tokenizers`` BPE model with the
ByteLevel pre-tokenizer (GPT-2's regex, no prefix space) and decoder, and our special
token is added to it; both must produce the same token sequences on the prose
validation split and on arbitrary Unicode text (every code point but the surrogates;
we checked all 1.1 million separately while writing this module). ``tokenizers``
recognises added special tokens in any text, which is ours with ``allowed_special="all"``;
with its ``encode_special_tokens`` switched on it encodes them as text, which is our
default.

Training: ``tokenizers.trainers.BpeTrainer`` with the full byte alphabet breaks ties
between equally frequent pairs by the smallest pair of ids, and numbers the bytes in
the order of their printable characters, as we do. So both trainers learn the same
merges, in the same order, on the prose and on random corpora built to have many ties.
Its ids put the special tokens first; ours put them last, so ids are compared through
the token strings.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from llmcourse.data import python_docs
from llmcourse.text import BPETokenizer, to_byte_level

EOT = "<|endoftext|>"
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)


def byte_level_tokenizer(model: models.Model) -> Tokenizer:
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def to_tokenizers(ours: BPETokenizer) -> Tokenizer:
    """Our vocabulary and merges in a Hugging Face BPE model."""
    vocab = {ours.token(i): i for i in range(len(ours))}
    merges = [(to_byte_level(a), to_byte_level(b)) for a, b in ours.merges]
    tokenizer = byte_level_tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.add_special_tokens(list(ours.specials))
    return tokenizer


def train_tokenizers(texts: list[str], vocab_size: int, specials: list[str]) -> Tokenizer:
    tokenizer = byte_level_tokenizer(models.BPE())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def their_merges(tokenizer: Tokenizer) -> list[tuple[str, str]]:
    return [tuple(m) for m in json.loads(tokenizer.to_str())["model"]["merges"]]


def our_merges(ours: BPETokenizer) -> list[tuple[str, str]]:
    return [(to_byte_level(a), to_byte_level(b)) for a, b in ours.merges]


@pytest.fixture(scope="module")
def prose():
    return python_docs()


@pytest.fixture(scope="module")
def pair(prose):
    ours = BPETokenizer.train(prose.train, vocab_size=1500, specials=[EOT])
    return ours, to_tokenizers(ours)


def assert_same_encoding(ours: BPETokenizer, theirs: Tokenizer, text: str) -> None:
    encoding = theirs.encode(text)
    ids = ours.encode(text, allowed_special="all")
    assert [ours.token(i) for i in ids] == encoding.tokens, repr(text)
    assert ids == encoding.ids
    theirs.encode_special_tokens = True  # special-token strings as text: our default
    try:
        assert ours.encode(text) == theirs.encode(text).ids, repr(text)
    finally:
        theirs.encode_special_tokens = False


# ------------------------------------------------------------------------ encoding


def test_same_tokens_on_the_prose_validation_split(prose, pair):
    ours, theirs = pair
    for paragraph in prose.validation:
        assert_same_encoding(ours, theirs, paragraph)
    whole = f"\n\n{EOT}".join(prose.validation)
    assert_same_encoding(ours, theirs, whole)
    assert theirs.decode(ours.encode(whole, allowed_special="all"), skip_special_tokens=False) == (
        whole
    )


@settings(max_examples=150, deadline=None)
@given(TEXT)
def test_same_tokens_on_any_unicode_text(pair, text):
    ours, theirs = pair
    assert_same_encoding(ours, theirs, text)
    assert theirs.decode(ours.encode(text)) == ours.decode(ours.encode(text)) == text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(TEXT, st.just(EOT), st.sampled_from([" ", "<|", "|>", "今天 🙂"]))))
def test_same_tokens_with_special_tokens(pair, parts):
    ours, theirs = pair
    assert_same_encoding(ours, theirs, "".join(parts))


# ------------------------------------------------------------------------ training


@pytest.mark.parametrize("vocab_size", [300, 1000, 3000])
def test_same_merges_as_bpe_trainer_on_prose(prose, vocab_size):
    ours = BPETokenizer.train(prose.train, vocab_size, specials=[EOT])
    theirs = train_tokenizers(prose.train, vocab_size, [EOT])
    assert our_merges(ours) == their_merges(theirs)
    assert len(ours) == theirs.get_vocab_size() == vocab_size
    # their ids: the special token first, then ours shifted by one
    assert theirs.token_to_id(EOT) == 0
    assert all(theirs.token_to_id(ours.token(i)) == i + 1 for i in range(len(ours.vocab)))


CORPUS = st.lists(st.text("ab cé\n", max_size=25), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(CORPUS, st.integers(256, 330))
def test_same_merges_as_bpe_trainer_with_many_ties(texts, vocab_size):
    ours = BPETokenizer.train(texts, vocab_size)
    theirs = train_tokenizers(texts, vocab_size, [])
    assert our_merges(ours) == their_merges(theirs)
    assert len(ours) == theirs.get_vocab_size()
