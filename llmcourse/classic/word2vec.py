"""word2vec's skip-gram model (Mikolov et al., 2013): word vectors from co-occurrence.

Every word ``w`` has two vectors, ``v_w`` when it is the center word and ``u_w`` when
it is a context word. For each position ``t`` of the text and each offset
``0 < |j| <= window``, the model predicts the context word ``o = w_{t+j}`` from the
center word ``c = w_t`` with a softmax over the vocabulary,

    p(o | c) = exp(u_o . v_c) / sum_w exp(u_w . v_c),

and training minimises ``J = -1/T sum_t sum_j log p(w_{t+j} | w_t)``. The normaliser
costs a dot product with every word of the vocabulary. **Negative sampling**
replaces it by ``k`` random "noise" words ``n_1 .. n_k`` drawn from the unigram
distribution raised to the power 3/4, and a logistic loss that tells the true
context word from the noise:

    -log sigmoid(u_o . v_c) - sum_i log sigmoid(-u_{n_i} . v_c).

Words that occur in similar contexts end up with similar vectors ``v``; cosine
similarity between them finds a word's nearest neighbours.

**Subsampling** of frequent words (Mikolov et al., 2013b) drops each occurrence of a
word ``w`` of relative frequency ``f(w)`` before the pairs are made, keeping it with
probability ``sqrt(t / f(w))`` (the paper's formula) or ``sqrt(t / f(w)) + t / f(w)``
(the released word2vec code), capped at 1, for a threshold ``t``: very frequent words
lose most of their occurrences, words rarer than ``t`` none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.checks import check_choice, check_int, check_positive


def skipgram_pairs(
    sentences: Sequence[Sequence[int]], window: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """All (center, context) pairs at distance at most ``window`` within each sentence.

    Pairs are listed sentence by sentence, position by position, and for each
    position by offset ``j = -window .. -1, 1 .. window``; offsets that fall outside
    the sentence are skipped (no padding).

    Args:
        sentences: sentences of word ids.
        window: the largest offset ``m``, >= 1.

    Returns:
        ``centers`` and ``contexts``, two ``torch.long`` tensors of shape ``(N,)``.

    Example:
        >>> centers, contexts = skipgram_pairs([[7, 8, 9]], window=1)
        >>> list(zip(centers.tolist(), contexts.tolist()))
        [(7, 8), (8, 7), (8, 9), (9, 8)]
    """
    check_int("window", window)
    if isinstance(sentences, torch.Tensor) or any(isinstance(s, str) for s in sentences):
        raise TypeError("sentences must be a list of lists of ids, e.g. [[4, 9, 2], [7, 5]]")
    offsets = [j for j in range(-window, window + 1) if j != 0]
    centers, contexts = [], []
    for sentence in sentences:
        ids = [int(i) for i in sentence]
        for t, center in enumerate(ids):
            for j in offsets:
                if 0 <= t + j < len(ids):
                    centers.append(center)
                    contexts.append(ids[t + j])
    return torch.tensor(centers, dtype=torch.long), torch.tensor(contexts, dtype=torch.long)


def noise_distribution(counts: Sequence[int] | torch.Tensor, power: float = 0.75) -> torch.Tensor:
    """The negative-sampling distribution ``P_n(w) = c(w)^power / sum_w' c(w')^power``.

    Args:
        counts: ``(V,)`` the count of every word id in the training text, >= 0.
        power: the exponent; 3/4 (Mikolov et al.) moves probability from frequent
            words to rare ones, 1 is the unigram distribution, 0 the uniform one.

    Returns:
        ``(V,)`` float64 probabilities that sum to 1.
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.ndim != 1 or len(counts) == 0:
        raise ValueError(
            f"counts must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}"
        )
    if (counts < 0).any() or not counts.sum() > 0:
        raise ValueError("counts must be >= 0 with a positive total")
    if not power >= 0:
        raise ValueError(f"power must be >= 0, got {power!r}")
    weights = torch.where(counts > 0, counts**power, 0.0)
    return weights / weights.sum()


SUBSAMPLING_FORMS = ("paper", "code")


def keep_probabilities(
    counts: Sequence[int] | torch.Tensor, threshold: float = 1e-3, form: str = "code"
) -> torch.Tensor:
    """The probability of keeping each occurrence of each word under subsampling.

    With ``f(w) = c(w) / sum_w' c(w')`` and ``t = threshold``:

    - ``form="paper"``: ``sqrt(t / f)``, i.e. discard with probability ``1 - sqrt(t / f)``
      (Mikolov et al., 2013b, equation 5);
    - ``form="code"``: ``sqrt(t / f) + t / f``, what ``word2vec.c`` computes as
      ``(sqrt(f / t) + 1) * t / f``; it keeps a little more of every word.

    Both are capped at 1; a word that never occurs gets 1.

    Args:
        counts: ``(V,)`` the count of every word id in the training text, >= 0.
        threshold: ``t`` > 0; word2vec's default is 1e-3, the paper used 1e-5 on
            billions of words.
        form: ``"paper"`` or ``"code"``.

    Returns:
        ``(V,)`` float64 probabilities in (0, 1].
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.ndim != 1 or len(counts) == 0:
        raise ValueError(
            f"counts must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}"
        )
    if (counts < 0).any() or not counts.sum() > 0:
        raise ValueError("counts must be >= 0 with a positive total")
    check_positive("threshold", threshold)
    check_choice("form", form, SUBSAMPLING_FORMS)
    ratio = threshold / (counts / counts.sum())  # t / f, inf for unseen words
    keep = ratio.sqrt() + (ratio if form == "code" else 0.0)
    return keep.clamp(max=1.0)


def subsample(
    sentences: Sequence[Sequence[int]],
    keep: torch.Tensor,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Drop each token ``i`` at random, keeping it with probability ``keep[i]``.

    Args:
        sentences: sentences of word ids.
        keep: ``(V,)`` keep probabilities, e.g. from :func:`keep_probabilities`.
        generator: seeds the draws (one uniform number per token, in reading order).

    Returns:
        The sentences with the dropped tokens removed (a sentence may become empty);
        the pairs of :func:`skipgram_pairs` are then made on what is left, so the
        window reaches past the dropped words.
    """
    if keep.ndim != 1 or (keep < 0).any() or (keep > 1).any():
        raise ValueError("keep must be a 1-D tensor of probabilities in [0, 1]")
    if isinstance(sentences, torch.Tensor) or any(isinstance(s, str) for s in sentences):
        raise TypeError("sentences must be a list of lists of ids, e.g. [[4, 9, 2], [7, 5]]")
    lengths = [len(s) for s in sentences]
    flat = torch.tensor([int(i) for s in sentences for i in s], dtype=torch.long)
    if len(flat) and not 0 <= int(flat.min()) <= int(flat.max()) < len(keep):
        raise ValueError(f"word ids must be in [0, {len(keep)})")
    kept = torch.rand(len(flat), generator=generator, dtype=torch.float64) < keep[flat]
    out, start = [], 0
    for n in lengths:
        out.append(flat[start : start + n][kept[start : start + n]].tolist())
        start += n
    return out


def sample_negatives(
    noise: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw word ids from ``noise`` (with replacement): a ``torch.long`` tensor of ``shape``."""
    if noise.ndim != 1:
        raise ValueError(f"noise must be a 1-D distribution, got shape {tuple(noise.shape)}")
    draws = torch.multinomial(noise, math.prod(shape), replacement=True, generator=generator)
    return draws.view(shape)


class SkipGram(nn.Module):
    """Center vectors ``v`` and context vectors ``u`` for every word, with both losses.

    The initialisation follows the original word2vec code: center vectors uniform
    in ``[-0.5/d, 0.5/d]``, context vectors zero.

    Args:
        vocab_size: ``V``, the number of word ids.
        dim: ``d``, the size of the vectors.
    """

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        check_int("vocab_size", vocab_size)
        check_int("dim", dim)
        self.center = nn.Embedding(vocab_size, dim)  # v_w, one row per word: (V, d)
        self.context = nn.Embedding(vocab_size, dim)  # u_w: (V, d)
        nn.init.uniform_(self.center.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.context.weight)

    def scores(self, centers: torch.Tensor) -> torch.Tensor:
        """``u_w . v_c`` for every word ``w``: ``centers (batch,)`` -> ``(batch, V)`` logits."""
        return self.center(centers) @ self.context.weight.T

    def softmax_loss(self, centers: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        """Mean of ``-log p(o | c)`` under the full softmax over the vocabulary.

        Args:
            centers: ``(batch,)`` center word ids ``c``.
            contexts: ``(batch,)`` context word ids ``o``.
        """
        _check_pairs(centers, contexts)
        return F.cross_entropy(self.scores(centers), contexts)

    def negative_sampling_loss(
        self, centers: torch.Tensor, contexts: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """Mean of ``-log s(u_o . v_c) - sum_i log s(-u_{n_i} . v_c)``, ``s`` the sigmoid.

        Args:
            centers: ``(batch,)`` center word ids ``c``.
            contexts: ``(batch,)`` context word ids ``o``.
            negatives: ``(batch, k)`` noise word ids ``n_i``, e.g. from :func:`sample_negatives`.
        """
        _check_pairs(centers, contexts)
        if negatives.ndim != 2 or negatives.shape[0] != centers.shape[0]:
            raise ValueError(
                f"negatives must have shape (batch, k) = ({centers.shape[0]}, k), "
                f"got {tuple(negatives.shape)}"
            )
        v = self.center(centers)  # (batch, d)
        positive = (self.context(contexts) * v).sum(-1)  # (batch,)
        negative = (self.context(negatives) @ v.unsqueeze(-1)).squeeze(-1)  # (batch, k)
        return -(F.logsigmoid(positive) + F.logsigmoid(-negative).sum(-1)).mean()


def _check_pairs(centers: torch.Tensor, contexts: torch.Tensor) -> None:
    if centers.ndim != 1 or centers.shape != contexts.shape:
        raise ValueError(
            "centers and contexts must be 1-D tensors of the same length, got shapes "
            f"{tuple(centers.shape)} and {tuple(contexts.shape)}"
        )


def cosine_similarity_matrix(vectors: torch.Tensor) -> torch.Tensor:
    """``(V, d)`` vectors -> ``(V, V)`` cosine similarities ``x_i . x_j / (|x_i| |x_j|)``.

    A zero vector has similarity 0 with everything.
    """
    if vectors.ndim != 2:
        raise ValueError(f"vectors must have shape (V, d), got {tuple(vectors.shape)}")
    unit = F.normalize(vectors, dim=1)
    return unit @ unit.T


def nearest(vectors: torch.Tensor, query: int, k: int = 5) -> tuple[list[int], list[float]]:
    """The ``k`` rows most similar to row ``query`` by cosine similarity, the query excluded.

    Args:
        vectors: ``(V, d)`` one vector per word id.
        query: the id of the query word.
        k: how many neighbours, at most ``V - 1``.

    Returns:
        ``(ids, similarities)``, most similar first (ties by smaller id).
    """
    if vectors.ndim != 2:
        raise ValueError(f"vectors must have shape (V, d), got {tuple(vectors.shape)}")
    n = vectors.shape[0]
    if not isinstance(query, int) or isinstance(query, bool) or not 0 <= query < n:
        raise ValueError(f"query must be an id in [0, {n}), got {query!r}")
    check_int("k", k)
    if k > n - 1:
        raise ValueError(f"k must be at most V - 1 = {n - 1}, got {k}")
    unit = F.normalize(vectors.double(), dim=1)
    similarity = unit @ unit[query]  # (V,)
    similarity[query] = -torch.inf  # never its own neighbour
    values, ids = torch.sort(similarity, descending=True, stable=True)
    return ids[:k].tolist(), values[:k].tolist()
