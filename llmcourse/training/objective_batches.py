"""The three pretraining objectives on the same text: batches and losses.

Chapter 9 pretrains a decoder, an encoder and an encoder-decoder on the same documents
(e.g. :func:`llmcourse.data.documents.topic_documents`) to compare their objectives.
Every example is a pair of sentences written as ``<eot> A <eot> B``, the document
format of the course's models with ``<|endoftext|>`` in the roles of BERT's ``[CLS]``
and ``[SEP]``:

- **causal LM** (:func:`causal_lm_batches`): B follows A in its document; predict every
  next token (:func:`~llmcourse.training.objectives.next_token_loss`);
- **masked LM + next-sentence prediction** (:func:`masked_lm_nsp_batches`,
  :func:`masked_lm_nsp_loss`): B follows A half of the time
  (:func:`~llmcourse.training.objectives.next_sentence_pairs`); 15% of the tokens are
  corrupted with the 80/10/10 rule; predict them, and from the first position whether
  B follows A. Like BERT, the output layer runs at the selected positions only;
- **span corruption** (:func:`span_corruption_batches`, :func:`span_corruption_loss`):
  B follows A; 15% of the tokens, in spans of mean length 3, become sentinels; the
  decoder, started by ``<eot>``, writes the spans.

Batches are drawn uniformly with replacement by a seeded generator, so the same seed
gives the same batches. Examples are lists of token ids; the sentences are encoded
with the tokenizer's special tokens disallowed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import check_int
from llmcourse.data.batching import IGNORE_INDEX, pad_batch
from llmcourse.data.documents import EOT, special_id
from llmcourse.models.bert import BERT
from llmcourse.models.t5 import T5
from llmcourse.text.bpe import BPETokenizer
from llmcourse.training.objectives import mask_tokens, span_corruption

PAD, MASK = "<|pad|>", "<|mask|>"
N_SENTINELS = 8
"""Sentinels ``<|extra_0|>`` ... ``<|extra_7|>``: enough for 7 spans per example."""

Ids = list[int]


def encode_documents(
    tokenizer: BPETokenizer, documents: Sequence[Sequence[Sequence[str]]]
) -> list[list[Ids]]:
    """Documents of sentences of words -> documents of sentences of token ids."""
    if isinstance(documents, str) or len(documents) < 2:
        raise ValueError("documents must be a sequence of at least two documents")
    return [[tokenizer.encode(" ".join(sentence)) for sentence in doc] for doc in documents]


def consecutive_pairs(documents: Sequence[Sequence[Ids]]) -> list[tuple[Ids, Ids]]:
    """Every pair ``(A, B)`` of consecutive sentences of a document, in order."""
    return [
        (first, second)
        for doc in documents
        for first, second in zip(doc[:-1], doc[1:], strict=True)
    ]


def pair_ids(first: Ids, second: Ids, eot: int) -> Ids:
    """``<eot> A <eot> B``."""
    return [eot, *first, eot, *second]


def _picks(n: int, batch_size: int, generator: torch.Generator) -> list[int]:
    return torch.randint(0, n, (batch_size,), generator=generator).tolist()


def _check(pairs: Sequence, batch_size: int) -> None:
    if len(pairs) == 0:
        raise ValueError("pairs is empty")
    check_int("batch_size", batch_size)


def causal_lm_batches(
    tokenizer: BPETokenizer, pairs: Sequence[tuple[Ids, Ids]], batch_size: int = 32, seed: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless ``(inputs, targets)``, both ``(batch, time)``: the padded pairs without
    their last token, and the next tokens (:data:`IGNORE_INDEX` at padding)."""
    _check(pairs, batch_size)
    eot, pad = special_id(tokenizer, EOT), special_id(tokenizer, PAD)
    g = torch.Generator().manual_seed(seed)
    while True:
        ids, lengths = pad_batch(
            [pair_ids(*pairs[i], eot) for i in _picks(len(pairs), batch_size, g)], pad
        )
        targets = ids.masked_fill(torch.arange(ids.shape[1]) >= lengths[:, None], IGNORE_INDEX)
        yield ids[:, :-1], targets[:, 1:]


def masked_lm_nsp_batches(
    tokenizer: BPETokenizer,
    nsp_pairs: Sequence[tuple[Ids, Ids, int]],
    batch_size: int = 32,
    seed: int = 0,
) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """Endless ``(inputs, real, labels, is_next)``: the corrupted pairs ``(batch, time)``,
    the mask of real tokens, the masked-LM labels ``(batch, time)`` and the NSP labels
    ``(batch,)`` (1 when B follows A). Special tokens are never selected."""
    _check(nsp_pairs, batch_size)
    eot, pad, mask = (special_id(tokenizer, s) for s in (EOT, PAD, MASK))
    specials = list(tokenizer.specials.values())
    g = torch.Generator().manual_seed(seed)
    while True:
        picks = [nsp_pairs[i] for i in _picks(len(nsp_pairs), batch_size, g)]
        ids, lengths = pad_batch([pair_ids(a, b, eot) for a, b, _ in picks], pad)
        inputs, labels = mask_tokens(ids, mask, len(tokenizer), specials, generator=g)
        real = torch.arange(ids.shape[1]) < lengths[:, None]
        yield inputs, real, labels, torch.tensor([label for *_, label in picks])


class BERTForPretraining(nn.Module):
    """A :class:`~llmcourse.models.bert.BERT` and its next-sentence classifier, a linear
    layer on the first position's vector; ``.bert`` is the body that fine-tuning keeps."""

    def __init__(self, bert: BERT) -> None:
        super().__init__()
        if not isinstance(bert, BERT):
            raise ValueError(f"bert must be a BERT, got {type(bert).__name__}")
        self.bert = bert
        self.nsp = nn.Linear(bert.config.d_model, 2)

    def forward(self, idx: Tensor, padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``idx: (batch, time)`` -> ``hidden: (batch, time, d_model)`` and the NSP logits
        ``(batch, 2)``."""
        hidden = self.bert.hidden_states(idx, padding_mask)
        return hidden, self.nsp(hidden[:, 0])


def masked_lm_nsp_loss(
    model: BERTForPretraining, batch: tuple[Tensor, Tensor, Tensor, Tensor]
) -> Tensor:
    """The masked-LM cross-entropy over the selected positions plus the NSP cross-entropy."""
    inputs, real, labels, is_next = batch
    hidden, nsp_logits = model(inputs, real)
    selected = labels != IGNORE_INDEX
    mlm = F.cross_entropy(model.bert.lm_head(hidden[selected]), labels[selected])
    return mlm + F.cross_entropy(nsp_logits, is_next)


def span_corruption_batches(
    tokenizer: BPETokenizer,
    pairs: Sequence[tuple[Ids, Ids]],
    batch_size: int = 32,
    seed: int = 0,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """Endless ``(src, src_real, tgt_in, tgt_out)``: the corrupted pairs ``(batch,
    src_time)`` and their mask of real tokens, the decoder's inputs ``(batch, time)``
    (``<eot>`` then the targets but the last) and its targets (:data:`IGNORE_INDEX` at
    padding)."""
    _check(pairs, batch_size)
    eot, pad = special_id(tokenizer, EOT), special_id(tokenizer, PAD)
    sentinels = [special_id(tokenizer, f"<|extra_{i}|>") for i in range(N_SENTINELS)]
    g = torch.Generator().manual_seed(seed)
    while True:
        sources, targets = [], []
        for i in _picks(len(pairs), batch_size, g):
            ids = torch.tensor(pair_ids(*pairs[i], eot))
            src, tgt = span_corruption(ids, sentinels, noise_density, mean_span_length, g)
            sources.append(src.tolist())
            targets.append(tgt.tolist())
        src, lengths = pad_batch(sources, pad)
        tgt_in, _ = pad_batch([[eot, *t[:-1]] for t in targets], pad)
        tgt_out, _ = pad_batch(targets, IGNORE_INDEX)
        yield src, torch.arange(src.shape[1]) < lengths[:, None], tgt_in, tgt_out


def span_corruption_loss(model: T5, batch: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
    """The decoder's cross-entropy on the span targets."""
    src, src_real, tgt_in, tgt_out = batch
    return F.cross_entropy(model(src, tgt_in, src_real).flatten(0, 1), tgt_out.flatten())
