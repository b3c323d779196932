"""Parity of llmcourse.classic.ngram.NGramLM with an independent implementation, nltk.lm.

Both libraries implement the same estimators -- maximum likelihood, Laplace / Lidstone
(add-k) and interpolated Kneser-Ney -- so on the same n-gram counts they must give the
same probabilities, to rounding error.

Why the training n-grams for nltk are built by hand here
--------------------------------------------------------
The two libraries pad sentences differently. ``NGramLM`` pads every sentence with
``order - 1`` ``<s>`` on the left and *one* ``</s>`` on the right, and predicts each word
and that final ``</s>`` (never ``<s>``). nltk's ``padded_everygram_pipeline`` pads
``order - 1`` symbols on *both* sides and also counts the everygrams made only of
padding (``('</s>', '</s>')`` ...), so its counts are not the ones our model is defined
on. So for nltk we list, for every predicted position ``t`` of our padded sentence, the
n-grams of every order ``m = 1..n`` ending at ``t``, and let nltk count those. The
counting itself (what the n-grams of a sentence are) is pinned down by hand-worked
examples in ``test_ngram.py``; this module checks the estimators on top of the counts,
including held-out text with unknown words, which nltk maps to its unknown label on its
own (we give it the raw words and ``unk_label='<unk>'``).

One nltk convention needs an adapter: nltk maps every token of a training n-gram or a
query context that is not in its Vocabulary to the unknown label, so ``<s>`` must be in
the nltk Vocabulary, and nltk then counts it in ``len(vocab)``, the ``|V|`` of add-k
smoothing. Our ``|V|`` is the set of *predicted* tokens (training words, ``</s>``,
``<unk>``), without ``<s>``, which is what makes an add-k distribution over the tokens a
model can predict sum to 1 (nltk's sums to ``1 - P(<s>)``; see
``test_nltk_counts_bos_in_the_add_k_denominator``). For Laplace and Lidstone the nltk
vocabulary is therefore a subclass whose ``len`` leaves out ``<s>``; MLE and Kneser-Ney
do not use ``|V|`` and run on the plain nltk Vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

nltk_lm = pytest.importorskip("nltk.lm")

from llmcourse.classic import NGramLM  # noqa: E402
from llmcourse.data import english_grammar, python_docs  # noqa: E402
from llmcourse.text import BOS, EOS, UNK, tokenized_sentences  # noqa: E402

TOL = 1e-12
ORDERS = (1, 2, 3, 4)
DISCOUNT = 0.75
GAMMA = 0.3  # Lidstone's pseudo-count


class PredictedVocabulary(nltk_lm.Vocabulary):
    """nltk's Vocabulary, with ``<s>`` a member (so lookups keep it) but not counted in len."""

    def __len__(self) -> int:
        return super().__len__() - (BOS in self)


def padded(sentence: Sequence[str], order: int) -> list[str]:
    return [BOS] * (order - 1) + list(sentence) + [EOS]


def training_ngrams(sentences: list[list[str]], order: int) -> list[list[tuple[str, ...]]]:
    """Per sentence: for each predicted position t, the m-grams ending at t, m = 1..order."""
    out = []
    for sentence in sentences:
        p = padded(sentence, order)
        out.append(
            [
                tuple(p[t - m + 1 : t + 1])
                for t in range(order - 1, len(p))
                for m in range(1, order + 1)
            ]
        )
    return out


def nltk_model(kind: str, order: int, train: list[list[str]], min_count: int):
    vocab_cls = PredictedVocabulary if kind in ("laplace", "lidstone") else nltk_lm.Vocabulary
    vocabulary = vocab_cls(
        [w for s in train for w in padded(s, order)], unk_cutoff=min_count, unk_label=UNK
    )
    lm = {
        "mle": lambda: nltk_lm.MLE(order, vocabulary=vocabulary),
        "laplace": lambda: nltk_lm.Laplace(order, vocabulary=vocabulary),
        "lidstone": lambda: nltk_lm.Lidstone(GAMMA, order, vocabulary=vocabulary),
        "kneser_ney": lambda: nltk_lm.KneserNeyInterpolated(
            order, discount=DISCOUNT, vocabulary=vocabulary
        ),
    }[kind]()
    lm.fit(training_ngrams(train, order))
    return lm


def our_model(kind: str, order: int, train: list[list[str]], min_count: int) -> NGramLM:
    lm = {
        "mle": lambda: NGramLM(order, "mle"),
        "laplace": lambda: NGramLM(order, "add_k", k=1.0),
        "lidstone": lambda: NGramLM(order, "add_k", k=GAMMA),
        "kneser_ney": lambda: NGramLM(order, "kneser_ney", discount=DISCOUNT),
    }[kind]()
    return lm.fit(train, min_count=min_count)


def queries(sentences, order, extra_words, n_contexts):
    """(word, context) pairs: every prediction in the sentences, plus for the first
    ``n_contexts`` positions every word in ``extra_words`` (a whole distribution)."""
    pairs = []
    for sentence in sentences:
        p = padded(sentence, order)
        for t in range(order - 1, len(p)):
            context = tuple(p[t - order + 1 : t])
            pairs.append((p[t], context))
            if len(pairs) <= n_contexts:
                pairs.extend((w, context) for w in extra_words)
    return pairs


def check_parity(kind, order, train, heldout, min_count, n_contexts, n_train, stride=1):
    ours = our_model(kind, order, train, min_count)
    theirs = nltk_model(kind, order, train, min_count)
    # same predicted vocabulary: nltk adds '<s>' (a plain Vocabulary) when order > 1
    extra = int(kind in ("mle", "kneser_ney") and order > 1)
    assert len(theirs.vocab) == len(ours.vocab) + extra
    assert set(ours.vocab.itos) == set(theirs.vocab) - {BOS}

    # every word of the vocabulary (or every stride-th) and one unknown word
    words = [UNK, EOS] + ours.vocab.itos[2::stride] + ["dragon"]
    pairs = queries(train[:n_train], order, words, n_contexts)
    pairs += queries(heldout, order, words, n_contexts)
    pairs += [(w, ("dragon",) * (order - 1)) for w in words]  # an all-unknown context
    assert len(pairs) > 200
    checked_unk = 0
    for word, context in pairs:
        expected = theirs.score(word, context if context else None)
        got = ours.prob(word, list(context))
        assert math.isclose(got, expected, rel_tol=0, abs_tol=TOL), (kind, order, word, context)
        checked_unk += word not in ours.vocab or any(c not in ours.vocab for c in context)
    assert checked_unk > 0  # unknown words were exercised


@pytest.fixture(scope="module")
def grammar_data():
    g = english_grammar()
    train = [s.tokens for s in g.generate(300, seed=0)]
    heldout = [s.tokens for s in g.generate(40, seed=1)]
    return train, heldout


@pytest.fixture(scope="module")
def prose_data():
    split = python_docs()
    train = tokenized_sentences(split.train[:40])
    heldout = tokenized_sentences(split.validation[:3])
    return train, heldout


KINDS = ["mle", "laplace", "lidstone", "kneser_ney"]


def cases():
    for kind in KINDS:
        for order in ORDERS:
            if kind == "kneser_ney" and order == 1:
                continue  # needs a lower order to interpolate with
            yield kind, order


@pytest.mark.parametrize("min_count", [1, 2])
@pytest.mark.parametrize("kind, order", list(cases()))
def test_parity_on_grammar_sentences(grammar_data, kind, order, min_count):
    train, heldout = grammar_data
    check_parity(kind, order, train, heldout, min_count, n_contexts=4, n_train=30)


@pytest.mark.parametrize("min_count", [1, 2])
@pytest.mark.parametrize("kind, order", list(cases()))
def test_parity_on_python_docs_prose(prose_data, kind, order, min_count):
    train, heldout = prose_data
    # nltk's Kneser-Ney rescans all counts for every score: fewer whole distributions here
    check_parity(kind, order, train, heldout, min_count, n_contexts=2, n_train=10, stride=5)


def test_prose_data_has_unknown_words_held_out(prose_data):
    train, heldout = prose_data
    seen = {w for s in train for w in s}
    assert len(train) > 50
    assert any(w not in seen for s in heldout for w in s)


@pytest.mark.parametrize("order", [2, 3])
def test_nltk_counts_bos_in_the_add_k_denominator(grammar_data, order):
    """The quirk the adapter works around, shown directly: with the plain nltk Vocabulary,
    Laplace divides by ``c(h) + |V| + 1`` (``<s>`` counted), so its probabilities over the
    predictable tokens sum to less than 1, while ours sum to 1."""
    train, _ = grammar_data
    ours = our_model("laplace", order, train, 1)
    vocabulary = nltk_lm.Vocabulary([w for s in train for w in padded(s, order)], unk_label=UNK)
    plain = nltk_lm.Laplace(order, vocabulary=vocabulary)
    plain.fit(training_ngrams(train, order))
    v = len(ours.vocab)
    assert len(plain.vocab) == v + 1
    context = (BOS,) * (order - 1)
    counts = ours.counts[order][context]
    total = sum(counts.values())
    for w in ours.vocab.itos:
        assert math.isclose(plain.score(w, context), (counts[w] + 1) / (total + v + 1), abs_tol=TOL)
    assert math.isclose(sum(ours.distribution(context).values()), 1.0, abs_tol=TOL)
    nltk_total = sum(plain.score(w, context) for w in ours.vocab.itos)
    assert math.isclose(nltk_total, 1 - 1 / (total + v + 1), abs_tol=TOL)
