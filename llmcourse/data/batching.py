"""Batches for training: random windows of a token stream, and padded sequences.

- :func:`random_blocks`: endless batches of random windows of one long stream of ids,
  each paired with the same window shifted by one token: the inputs and targets of
  next-token prediction (GPT-style pretraining, Chapters 6 to 10).
- :func:`pad_batch`: sequences of different lengths right-padded into one tensor, with
  their true lengths (the recurrent models of Chapter 3, classification and tagging).

Targets that carry no loss (padding, unselected positions) are :data:`IGNORE_INDEX`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from llmcourse.checks import check_int, check_token_ids

IGNORE_INDEX = -100
"""The target of positions that carry no loss (``F.cross_entropy``'s default ``ignore_index``)."""


def random_blocks(
    ids: Tensor, block_size: int, batch_size: int, seed: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless batches of random windows of a token stream, for next-token training.

    Args:
        ids: ``(n,)`` long, the whole training text as one stream of ids.
        block_size: the window length ``T``.
        batch_size: windows per batch.
        seed: seeds the window starts; the same seed gives the same batches.

    Yields:
        ``(inputs, targets)``, both ``(batch_size, T)``: ``targets`` is ``inputs``
        shifted by one token, ``targets[b, t] = ids[s_b + t + 1]``.
    """
    check_token_ids("ids", ids, ndim=1)
    check_int("block_size", block_size)
    check_int("batch_size", batch_size)
    if len(ids) < block_size + 1:
        raise ValueError(
            f"ids has {len(ids)} tokens; a window needs block_size + 1 = {block_size + 1}"
        )
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(block_size + 1, device=ids.device)
    while True:
        starts = torch.randint(0, len(ids) - block_size, (batch_size, 1), generator=generator)
        starts = starts.to(ids.device)
        windows = ids[starts + offsets]  # (batch, T + 1)
        yield windows[:, :-1], windows[:, 1:]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-pad id sequences into ``ids: (batch, max_length)`` and return ``lengths: (batch,)``.

    >>> pad_batch([[5, 6, 7], [8]], pad_id=0)
    (tensor([[5, 6, 7],
            [8, 0, 0]]), tensor([3, 1]))
    """
    if len(sequences) == 0:
        raise ValueError("sequences is empty")
    lengths = [len(s) for s in sequences]
    if min(lengths) < 1:
        raise ValueError("every sequence must have at least one token")
    ids = torch.full((len(sequences), max(lengths)), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return ids, torch.tensor(lengths)
