"""Small models on top of :mod:`llmcourse.classic.rnn`: a language model, a classifier, a tagger.

All three embed token ids, run a recurrent layer (``"rnn"``: tanh Elman RNN, or
``"lstm"``) with ``batch_first=True``, and put a linear layer on top:

- :class:`RNNLanguageModel` predicts the next token at every step,
  ``y_t = softmax(V h_t)``, and generates text by sampling.
- :class:`SequenceClassifier` predicts one label for a whole sequence from its last
  state or from the mean of its states.
- :class:`SequenceTagger` predicts one label for every token.

Batches of sequences of different lengths are right-padded (:func:`pad_batch`) and
come with their true ``lengths``, so padding never changes a prediction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import check_int
from llmcourse.classic.rnn import LSTM, RNN

CELLS = ("rnn", "lstm")
POOLINGS = ("last", "mean")


def recurrent_layer(
    cell: str, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False
) -> RNN | LSTM:
    """A batch-first :class:`~llmcourse.classic.rnn.RNN` (tanh) or
    :class:`~llmcourse.classic.rnn.LSTM`."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    layer_type = RNN if cell == "rnn" else LSTM
    return layer_type(
        input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional
    )


def mean_pool(output: Tensor, lengths: Tensor) -> Tensor:
    """The mean of ``output: (batch, time, features)`` over the first ``lengths[b]`` steps of
    each sequence -> ``(batch, features)``."""
    if output.ndim != 3 or lengths.shape != output.shape[:1]:
        raise ValueError(
            f"need output (batch, time, features) and lengths (batch,), got "
            f"{tuple(output.shape)} and {tuple(lengths.shape)}"
        )
    mask = torch.arange(output.shape[1], device=output.device) < lengths[:, None]
    summed = (output * mask.unsqueeze(-1)).sum(dim=1)
    return summed / lengths[:, None].to(output.dtype)


def final_states(h_n: Tensor, bidirectional: bool) -> Tensor:
    """The last layer's final state(s) from ``h_n: (num_layers * D, batch, hidden)``.

    Unidirectional: ``h_n[-1]``, the state after the last real token, ``(batch, hidden)``.
    Bidirectional: the forward state after the last token concatenated with the backward
    state after the *first* token, ``(batch, 2 * hidden)``; together they have read every
    word, and each has read one end of the sequence last.
    """
    return torch.cat([h_n[-2], h_n[-1]], dim=-1) if bidirectional else h_n[-1]


def sequence_cross_entropy(logits: Tensor, targets: Tensor, pad_id: int) -> Tensor:
    """Mean of ``-log softmax(logits)[target]`` over the targets that are not ``pad_id``.

    Args:
        logits: ``(batch, time, classes)``.
        targets: ``(batch, time)`` class ids; ``pad_id`` marks padding.
    """
    if logits.ndim != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(
            f"need logits (batch, time, classes) and targets (batch, time), got "
            f"{tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    if not (targets != pad_id).any():
        raise ValueError("every target is padding")
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=pad_id)


class RNNLanguageModel(nn.Module):
    """Embedding -> recurrent layer(s) -> linear: ``y_t = softmax(V h_t + b)``.

    Args:
        vocab_size: ``|V|``, the number of token ids (inputs and outputs).
        embedding_dim: the size of a token vector ``x_t``.
        hidden_size: the size of the state ``h_t``.
        cell: ``"rnn"`` or ``"lstm"``.
        num_layers: stacked recurrent layers.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        cell: str = "rnn",
        num_layers: int = 1,
    ) -> None:
        super().__init__()
        check_int("vocab_size", vocab_size)
        check_int("embedding_dim", embedding_dim)
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = recurrent_layer(cell, embedding_dim, hidden_size, num_layers)
        self.output = nn.Linear(hidden_size, vocab_size)

    def forward(
        self, ids: Tensor, state: Tensor | tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        """``ids: (batch, time)`` -> next-token ``logits: (batch, time, vocab_size)`` and the
        recurrent state after the last step (pass it back in to continue the sequence).

        Right padding needs no ``lengths`` here: step ``t`` only reads steps ``<= t``, so
        the logits of real tokens never see the padding after them.
        """
        output, state = self.rnn(self.embedding(ids), state)
        return self.output(output), state

    @torch.no_grad()
    def generate(
        self,
        bos_id: int,
        eos_id: int,
        max_length: int = 30,
        seed: int = 0,
        temperature: float = 1.0,
    ) -> list[int]:
        """Sample ids one at a time from ``<s>`` until ``</s>`` or ``max_length`` ids.

        Each step feeds the previous token and the carried state, draws the next id
        from ``softmax(logits / temperature)`` with a ``torch.Generator`` seeded with
        ``seed`` (the same seed gives the same ids), and stops when it draws ``eos_id``,
        which is not returned.
        """
        if not isinstance(max_length, int) or max_length < 0:
            raise ValueError(f"max_length must be a non-negative integer, got {max_length!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        generator = torch.Generator().manual_seed(seed)
        was_training = self.training
        self.eval()
        token, state, out = torch.tensor([[bos_id]]), None, []
        while len(out) < max_length:
            logits, state = self(token, state)
            probs = torch.softmax(logits[0, -1] / temperature, dim=-1)
            next_id = int(torch.multinomial(probs, 1, generator=generator))
            if next_id == eos_id:
                break
            out.append(next_id)
            token = torch.tensor([[next_id]])
        self.train(was_training)
        return out


class SequenceClassifier(nn.Module):
    """Embedding -> recurrent layer -> pooling -> linear: one label per sequence.

    Args:
        vocab_size, embedding_dim, hidden_size, cell: as for :class:`RNNLanguageModel`.
        num_classes: the number of labels.
        pooling: ``"last"``, the final state(s) (:func:`final_states`), or ``"mean"``,
            the mean of the last layer's outputs over the real tokens (:func:`mean_pool`).
        bidirectional: read the sequence in both directions.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        num_classes: int,
        cell: str = "rnn",
        pooling: str = "last",
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        for name, value in [("vocab_size", vocab_size), ("embedding_dim", embedding_dim)]:
            check_int(name, value)
        check_int("num_classes", num_classes)
        self.pooling, self.bidirectional = pooling, bidirectional
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = recurrent_layer(cell, embedding_dim, hidden_size, bidirectional=bidirectional)
        self.output = nn.Linear((2 if bidirectional else 1) * hidden_size, num_classes)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """Right-padded ``ids: (batch, time)``, ``lengths: (batch,)`` -> ``(batch, classes)``."""
        output, state = self.rnn(self.embedding(ids), lengths=lengths)
        if self.pooling == "mean":
            return self.output(mean_pool(output, lengths))
        h_n = state[0] if isinstance(state, tuple) else state
        return self.output(final_states(h_n, self.bidirectional))


class SequenceTagger(nn.Module):
    """Embedding -> recurrent layer(s) -> linear at every step: one label per token.

    Args:
        vocab_size, embedding_dim, hidden_size, cell, num_layers: as for
            :class:`RNNLanguageModel`.
        num_tags: the number of labels.
        bidirectional: read the sentence in both directions, so that each tag can
            depend on the words after it as well as before.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        num_tags: int,
        cell: str = "rnn",
        num_layers: int = 1,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        for name, value in [("vocab_size", vocab_size), ("embedding_dim", embedding_dim)]:
            check_int(name, value)
        check_int("num_tags", num_tags)
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = recurrent_layer(cell, embedding_dim, hidden_size, num_layers, bidirectional)
        self.output = nn.Linear((2 if bidirectional else 1) * hidden_size, num_tags)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """Right-padded ``ids: (batch, time)``, ``lengths: (batch,)`` -> ``(batch, time, tags)``."""
        output, _ = self.rnn(self.embedding(ids), lengths=lengths)
        return self.output(output)
