"""Small models and a statistical check shared by the decoding, speculative and cache tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llmcourse.models import GPT
from llmcourse.modules import TransformerConfig


class Bigram(nn.Module):
    """``P(next | ..., last) = probs[last]``: a model with an exact distribution."""

    def __init__(self, probs: list[list[float]]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(probs, dtype=torch.float64).log())

    def forward(self, idx: Tensor) -> Tensor:
        return self.logits[idx]  # (batch, time, vocab)


def random_gpt(seed: int = 0, scale: float = 1.0, **config) -> GPT:
    """A GPT of 2 layers of width 16 with random weights, seeded; ``config`` gives
    ``vocab_size`` and ``block_size`` and may change any other field. ``scale > 1``
    multiplies every weight, which makes the next-token distributions peaked and varied
    rather than GPT-2's near-uniform ones at initialisation."""
    torch.manual_seed(seed)
    model = GPT(TransformerConfig(**(dict(d_model=16, n_heads=2, n_layers=2) | config)))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


def chi_square_p_value(counts: Tensor, probs: Tensor) -> float:
    """Pearson's chi-square test of observed ``counts`` against ``probs`` (cells with
    probability 0 must be empty); the p-value from the regularised upper gamma function."""
    counts, probs = counts.double().flatten(), probs.double().flatten()
    assert (counts[probs == 0] == 0).all()
    expected = counts.sum() * probs[probs > 0]
    stat = ((counts[probs > 0] - expected) ** 2 / expected).sum()
    dof = torch.tensor((probs > 0).sum().item() - 1.0, dtype=torch.float64)
    return torch.special.gammaincc(dof / 2, stat / 2).item()
