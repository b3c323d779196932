"""Synthetic images of stripes, labelled by their orientation: a tiny vision task.

Each image is a grayscale ``size x size`` square of sinusoidal stripes with a random
period (3 to 8 pixels across the stripes) and phase, plus Gaussian noise. The label is
the direction of the stripes:

- 0 ``horizontal`` (constant along each row),
- 1 ``vertical`` (constant along each column),
- 2 ``diagonal`` (constant along ``row - column``, falling from top left),
- 3 ``anti-diagonal`` (constant along ``row + column``).

The images are drawn from a seeded generator: the same seed gives the same images.
"""

from __future__ import annotations

import math

import torch

from llmcourse.checks import check_int, check_non_negative

ORIENTATIONS = ("horizontal", "vertical", "diagonal", "anti-diagonal")


def stripe_images(
    n: int, size: int = 16, noise: float = 0.5, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy stripe images and their orientation labels.

    Args:
        n: number of images, >= 1.
        size: the side of each square image in pixels, >= 2.
        noise: standard deviation of the Gaussian noise added to stripes of amplitude 1.
        seed: seeds the labels, periods, phases and noise.

    Returns:
        ``images: (n, 1, size, size)`` float32 and ``labels: (n,)`` long in ``0..3``
        (an index into :data:`ORIENTATIONS`), balanced up to chance.
    """
    check_int("n", n)
    check_int("size", size, minimum=2)
    check_non_negative("noise", noise)
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(ORIENTATIONS), (n,), generator=g)
    period = torch.empty(n, 1, 1).uniform_(3.0, 8.0, generator=g)
    phase = torch.empty(n, 1, 1).uniform_(0.0, 2 * math.pi, generator=g)
    rows = torch.arange(size, dtype=torch.float32).reshape(1, size, 1)
    cols = torch.arange(size, dtype=torch.float32).reshape(1, 1, size)
    # the distance across the stripes, for each orientation (so the period is in pixels)
    across = torch.stack(
        [
            rows.expand(1, size, size),
            cols.expand(1, size, size),
            (rows - cols) / math.sqrt(2),
            (rows + cols) / math.sqrt(2),
        ]
    )[labels, 0]
    stripes = torch.sin(2 * math.pi * across / period + phase)
    images = stripes + noise * torch.randn(n, size, size, generator=g)
    return images.unsqueeze(1), labels
