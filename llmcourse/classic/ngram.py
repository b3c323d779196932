"""N-gram language models: counting, smoothing, perplexity and sampling.

An order-``n`` model makes the Markov assumption that a word depends only on the
``n - 1`` words before it,

    P(w_t | w_1 .. w_{t-1}) ~= P(w_t | w_{t-n+1} .. w_{t-1}),

and estimates that conditional from counts. Every sentence is padded with
``n - 1`` start symbols ``<s>`` on the left and one end symbol ``</s>`` on the
right; the model predicts each word and the end symbol, never ``<s>``. Words seen
fewer than ``min_count`` times in training, and unseen words at test time, become
``<unk>``. The predicted vocabulary ``V`` is therefore the kept training words
plus ``</s>`` and ``<unk>``.

Three estimators are provided:

- ``"mle"``: ``c(h, w) / c(h)``, zero for anything unseen.
- ``"add_k"``: ``(c(h, w) + k) / (c(h) + k |V|)`` (Laplace for ``k = 1``, Lidstone otherwise).
- ``"kneser_ney"``: interpolated Kneser-Ney (Kneser and Ney, 1995; Chen and Goodman,
  1999) with absolute discount ``d``. The highest order uses counts, lower orders
  use continuation counts ``N1+(. h w)``, the number of distinct words seen before
  ``h w``; a context never seen defers entirely to the next lower order. The
  recursion ends at continuation-count unigrams, so a word never seen in training
  has probability zero: fit with ``min_count >= 2`` so that ``<unk>`` is trained.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from llmcourse.text.words import BOS, EOS, UNK, Vocab

SMOOTHINGS = ("mle", "add_k", "kneser_ney")

Context = tuple[str, ...]


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """All contiguous n-grams of a token sequence, in order.

    >>> ngrams(["students", "opened", "their", "books"], 3)
    [('students', 'opened', 'their'), ('opened', 'their', 'books')]
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def pad(sentence: Sequence[str], order: int) -> list[str]:
    """``order - 1`` start symbols, the sentence, one end symbol."""
    return [BOS] * (order - 1) + list(sentence) + [EOS]


def _row_sums(tables: dict[int, dict[Context, Counter[str]]]) -> dict[int, dict[Context, int]]:
    """For each order and context, the sum of the counts that follow the context."""
    return {m: {context: sum(f.values()) for context, f in t.items()} for m, t in tables.items()}


class NGramLM:
    """An n-gram language model over word tokens.

    Args:
        order: ``n``, the length of the n-grams (1 is a unigram model).
        smoothing: ``"mle"``, ``"add_k"`` or ``"kneser_ney"``.
        k: the pseudo-count of ``add_k`` smoothing, > 0.
        discount: the absolute discount ``d`` of Kneser-Ney, in (0, 1).

    Example:
        >>> lm = NGramLM(order=2, smoothing="add_k", k=0.5).fit([["a", "b"], ["a", "c"]])
        >>> round(lm.prob("b", ["a"]), 4)  # (1 + 0.5) / (2 + 0.5 * 5)
        0.3333
    """

    def __init__(
        self, order: int, smoothing: str = "add_k", k: float = 1.0, discount: float = 0.75
    ) -> None:
        if not isinstance(order, int) or isinstance(order, bool) or order < 1:
            raise ValueError(f"order must be an integer >= 1, got {order!r}")
        if smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing must be one of {SMOOTHINGS}, got {smoothing!r}")
        if smoothing == "add_k" and not k > 0:
            raise ValueError(f"k must be > 0 for add_k smoothing, got {k!r}")
        if smoothing == "kneser_ney":
            if order < 2:
                raise ValueError(
                    "kneser_ney smoothing needs order >= 2 (it interpolates with lower orders)"
                )
            if not 0 < discount < 1:
                raise ValueError(f"discount must be in (0, 1), got {discount!r}")
        self.order, self.smoothing, self.k, self.discount = (
            order,
            smoothing,
            float(k),
            float(discount),
        )
        self.vocab: Vocab | None = None
        # counts[m][context][word] = count of the m-gram context + (word,), for m = 1..order
        self.counts: dict[int, dict[Context, Counter[str]]] = {}
        # continuation[m][context][word] = N1+(. context word), for m = 1..order-1
        self.continuation: dict[int, dict[Context, Counter[str]]] = {}
        # the sums of the two tables' rows, computed once at fit time
        self._count_totals: dict[int, dict[Context, int]] = {}
        self._continuation_totals: dict[int, dict[Context, int]] = {}

    # ------------------------------------------------------------------ training
    def fit(self, sentences: Iterable[Sequence[str]], min_count: int = 1) -> NGramLM:
        """Count the n-grams of tokenized sentences; returns ``self``.

        Args:
            sentences: an iterable of sentences, each a sequence of word strings.
            min_count: words seen fewer times become ``<unk>``.

        Raises:
            ValueError: if there is no sentence or no word to count.
        """
        # Check before list(s): list("the cat") would silently make a character model.
        sentences = list(sentences)
        if any(isinstance(s, str) for s in sentences):
            raise TypeError("sentences must be sequences of words, e.g. [['the', 'cat'], ...]")
        sentences = [list(s) for s in sentences]
        if not any(sentences):
            raise ValueError("cannot fit an n-gram model on an empty corpus")
        self.vocab = Vocab(
            (w for s in sentences for w in s), min_count=min_count, specials=(UNK, EOS)
        )
        n = self.order
        counts: dict[int, dict[Context, Counter[str]]] = {
            m: defaultdict(Counter) for m in range(1, n + 1)
        }
        for sentence in sentences:
            padded = pad(self.vocab.lookup(sentence), n)
            for t in range(n - 1, len(padded)):
                for m in range(1, n + 1):
                    counts[m][tuple(padded[t - m + 1 : t])][padded[t]] += 1
        self.counts = {m: dict(c) for m, c in counts.items()}
        self.continuation = {}
        if self.smoothing == "kneser_ney":
            for m in range(1, n):
                cont: dict[Context, Counter[str]] = defaultdict(Counter)
                for context, followers in self.counts[m + 1].items():
                    for word in followers:
                        cont[context[1:]][word] += 1
                self.continuation[m] = dict(cont)
        self._count_totals = _row_sums(self.counts)
        self._continuation_totals = _row_sums(self.continuation)
        return self

    # ------------------------------------------------------------ probabilities
    def _check_fitted(self) -> Vocab:
        if self.vocab is None:
            raise RuntimeError("the model is not fitted yet; call fit(sentences) first")
        return self.vocab

    def _context(self, context: Sequence[str]) -> Context:
        """The last ``order - 1`` words of a context (unknown words mapped to ``<unk>``),
        left-padded with ``<s>`` when shorter, as at the start of a sentence."""
        if isinstance(context, str):
            raise TypeError("context must be a sequence of words, not a str")
        vocab = self._check_fitted()
        words = [BOS] * (self.order - 1) + [w if w == BOS or w in vocab else UNK for w in context]
        return tuple(words[len(words) - (self.order - 1) :])

    def prob(self, word: str, context: Sequence[str] = ()) -> float:
        """P(word | context) under the model's smoothing."""
        vocab = self._check_fitted()
        if not isinstance(word, str):
            raise TypeError(f"word must be a str, got {type(word).__name__}")
        if word == BOS:
            raise ValueError(f"{BOS!r} is padding and is never predicted")
        word = word if word in vocab else UNK
        return self._prob(word, self._context(context))

    def _prob(self, word: str, context: Context) -> float:
        followers = self.counts[len(context) + 1].get(context)
        total = self._count_totals[len(context) + 1].get(context, 0)
        seen = followers[word] if followers else 0
        if self.smoothing == "mle":
            return seen / total if total else 0.0
        if self.smoothing == "add_k":
            return (seen + self.k) / (total + self.k * len(self.vocab))
        return self._kneser_ney(word, context)

    def _kneser_ney(self, word: str, context: Context) -> float:
        m = len(context) + 1
        highest = m == self.order
        followers = (self.counts if highest else self.continuation)[m].get(context)
        totals = (self._count_totals if highest else self._continuation_totals)[m]
        if m == 1:  # the recursion ends with continuation-count unigrams
            return followers[word] / totals[context]
        lower = self._kneser_ney(word, context[1:])
        if not followers:
            return lower
        total = totals[context]
        alpha = max(followers[word] - self.discount, 0.0) / total
        gamma = self.discount * len(followers) / total
        return alpha + gamma * lower

    def distribution(self, context: Sequence[str] = ()) -> dict[str, float]:
        """P(w | context) for every word of the vocabulary, most likely first."""
        vocab = self._check_fitted()
        ctx = self._context(context)
        probs = {w: self._prob(w, ctx) for w in vocab.itos}
        return dict(sorted(probs.items(), key=lambda item: (-item[1], item[0])))

    def log_prob(self, sentence: Sequence[str]) -> float:
        """Natural-log probability of a sentence and its end, ``sum_t log P(w_t | history)``.

        Returns ``-inf`` if some word has probability zero: with ``mle``, or with
        ``kneser_ney`` for unknown words when no ``<unk>`` was trained (``min_count=1``).
        """
        vocab = self._check_fitted()
        if isinstance(sentence, str):
            raise TypeError("sentence must be a sequence of words, not a str; tokenize it first")
        padded = pad(vocab.lookup(sentence), self.order)
        total = 0.0
        for t in range(self.order - 1, len(padded)):
            p = self._prob(padded[t], tuple(padded[t - self.order + 1 : t]))
            if p == 0.0:
                return -math.inf
            total += math.log(p)
        return total

    def cross_entropy(self, sentences: Iterable[Sequence[str]]) -> float:
        """Average negative log-probability per predicted token (words and ``</s>``), in nats."""
        total, count = 0.0, 0
        for sentence in sentences:
            total -= self.log_prob(sentence)
            count += len(sentence) + 1
        if count == 0:
            raise ValueError("cannot evaluate on an empty corpus")
        return total / count

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> float:
        """``exp(cross_entropy)``: the effective number of equally likely next words."""
        return math.exp(self.cross_entropy(sentences))

    # ---------------------------------------------------------------- sampling
    def generate(
        self, max_words: int = 30, seed: int = 0, context: Sequence[str] = ()
    ) -> list[str]:
        """Sample words one at a time until ``</s>`` or ``max_words`` words.

        Args:
            max_words: the most words to generate (``</s>`` is not returned).
            seed: seeds a private ``random.Random``; the same seed gives the same words.
            context: words that precede the generated ones (a prompt).
        """
        self._check_fitted()
        if not isinstance(max_words, int) or max_words < 0:
            raise ValueError(f"max_words must be a non-negative integer, got {max_words!r}")
        rng = random.Random(seed)
        history, out = list(context), []
        while len(out) < max_words:
            dist = self.distribution(history)
            if not any(dist.values()):
                raise ValueError(
                    f"the context {tuple(history[-(self.order - 1) :])} was never seen in "
                    "training, so an mle model has no distribution to sample from"
                )
            word = rng.choices(list(dist), weights=list(dist.values()))[0]
            if word == EOS:
                break
            out.append(word)
            history.append(word)
        return out
