"""Models with an exactly known next-token distribution, for the decoding tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Bigram(nn.Module):
    """``P(next | ..., last) = probs[last]``: a model with an exact distribution."""

    def __init__(self, probs: list[list[float]]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(probs, dtype=torch.float64).log())

    def forward(self, idx: Tensor) -> Tensor:
        return self.logits[idx]  # (batch, time, vocab)
