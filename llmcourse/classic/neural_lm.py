"""A fixed-window neural language model (Bengio et al., 2003).

Like an order-``n`` n-gram model, the model predicts a word from the ``window = n - 1``
words before it, but instead of counting it learns a vector for every word and a
small network on top:

    e = [E x_{t-window}; ...; E x_{t-1}]       concatenated embeddings, (window * d,)
    h = tanh(W e + b1)                          hidden layer, (hidden,)
    y = softmax(U h + b2)                       next-word distribution, (|V|,)

Words that are used alike get similar vectors, so what the model learns about one
context carries over to similar contexts it has never seen, which counting cannot do.

The conventions are those of :mod:`llmcourse.classic.ngram`, so that perplexities are
comparable: each sentence is padded on the left with ``window`` start symbols
``<s>`` and ends with ``</s>``; the model predicts every word and the end symbol,
never ``<s>``. Words are mapped to ids by a :class:`llmcourse.text.words.Vocab`, which
maps rare and unknown words to ``<unk>``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.checks import check_int


def parameter_count(vocab_size: int, window: int, embed_dim: int, hidden_dim: int) -> int:
    """The number of parameters of :class:`FixedWindowLM`, from the formula

    ``|V| d`` (embeddings, shared by all positions) ``+ h (window d) + h`` (``W``, ``b1``)
    ``+ |V| h + |V|`` (``U``, ``b2``).
    """
    check_int("vocab_size", vocab_size)
    check_int("window", window)
    check_int("embed_dim", embed_dim)
    check_int("hidden_dim", hidden_dim)
    v, d, h = vocab_size, embed_dim, hidden_dim
    return v * d + h * window * d + h + v * h + v


class FixedWindowLM(nn.Module):
    """Embeddings of the last ``window`` words, one tanh hidden layer, a softmax over words.

    Args:
        vocab_size: ``|V|``, the number of word ids (inputs and outputs share them).
        window: how many previous words the model reads (an n-gram model's ``n - 1``).
        embed_dim: ``d``, the size of a word vector.
        hidden_dim: ``h``, the size of the hidden layer.

    Example:
        >>> model = FixedWindowLM(vocab_size=100, window=3, embed_dim=8, hidden_dim=16)
        >>> model(torch.zeros(5, 3, dtype=torch.long)).shape
        torch.Size([5, 100])
    """

    def __init__(self, vocab_size: int, window: int, embed_dim: int, hidden_dim: int) -> None:
        super().__init__()
        check_int("vocab_size", vocab_size)
        check_int("window", window)
        check_int("embed_dim", embed_dim)
        check_int("hidden_dim", hidden_dim)
        self.vocab_size, self.window = vocab_size, window
        self.embedding = nn.Embedding(vocab_size, embed_dim)  # E: (|V|, d)
        self.hidden = nn.Linear(window * embed_dim, hidden_dim)  # W: (h, window d), b1: (h,)
        self.output = nn.Linear(hidden_dim, vocab_size)  # U: (|V|, h), b2: (|V|,)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """Next-word logits.

        Args:
            context: ``(batch, window)`` word ids, oldest first.

        Returns:
            ``(batch, vocab_size)`` logits; ``softmax`` of them is ``P(w | context)``.
        """
        if context.ndim != 2 or context.shape[1] != self.window:
            raise ValueError(
                f"context must have shape (batch, {self.window}), got {tuple(context.shape)}"
            )
        if context.dtype != torch.long:
            raise TypeError(f"context must hold integer ids (torch.long), got {context.dtype}")
        e = self.embedding(context).flatten(1)  # (batch, window * d)
        h = torch.tanh(self.hidden(e))  # (batch, h)
        return self.output(h)  # (batch, |V|)


def windows(
    sentences: Sequence[Sequence[int]], window: int, bos_id: int, eos_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (context, next word) example of a corpus of id sequences.

    Each sentence is padded with ``window`` ids ``bos_id`` on the left and one
    ``eos_id`` on the right; every word and the end symbol is a target, predicted from
    the ``window`` ids before it. A sentence of ``L`` words gives ``L + 1`` examples.

    Args:
        sentences: sentences of word ids.
        window: the context length, >= 1.
        bos_id, eos_id: the ids of ``<s>`` and ``</s>``.

    Returns:
        ``contexts`` of shape ``(N, window)`` and ``targets`` of shape ``(N,)``, both
        ``torch.long``, with ``N = sum(L + 1)``.
    """
    check_int("window", window)
    if isinstance(sentences, torch.Tensor) or any(isinstance(s, str) for s in sentences):
        raise TypeError("sentences must be a list of lists of ids, e.g. [[4, 9, 2], [7, 5]]")
    contexts, targets = [], []
    for sentence in sentences:
        padded = [bos_id] * window + [int(i) for i in sentence] + [eos_id]
        for t in range(window, len(padded)):
            contexts.append(padded[t - window : t])
            targets.append(padded[t])
    if not targets:
        return torch.empty(0, window, dtype=torch.long), torch.empty(0, dtype=torch.long)
    return torch.tensor(contexts, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


@torch.no_grad()
def cross_entropy(
    model: FixedWindowLM,
    sentences: Sequence[Sequence[int]],
    bos_id: int,
    eos_id: int,
    batch_size: int = 4096,
) -> float:
    """Average negative log-probability per predicted token (words and ``</s>``), in nats.

    The same quantity as :meth:`llmcourse.classic.ngram.NGramLM.cross_entropy`, for a model
    whose ids come from a vocabulary with the same words.
    """
    check_int("batch_size", batch_size)
    contexts, targets = windows(sentences, model.window, bos_id, eos_id)
    if len(targets) == 0:
        raise ValueError("cannot evaluate on an empty corpus")
    total = 0.0
    for start in range(0, len(targets), batch_size):
        logits = model(contexts[start : start + batch_size])
        total += F.cross_entropy(
            logits, targets[start : start + batch_size], reduction="sum"
        ).item()
    return total / len(targets)


def perplexity(
    model: FixedWindowLM,
    sentences: Sequence[Sequence[int]],
    bos_id: int,
    eos_id: int,
    batch_size: int = 4096,
) -> float:
    """``exp(cross_entropy)``: the model's effective number of equally likely next words."""
    return math.exp(cross_entropy(model, sentences, bos_id, eos_id, batch_size))
