"""k-means clustering, written out: k-means++ seeding, then Lloyd's iterations.

Auto-CoT {Zhang et al., 2023} groups questions by meaning before it picks one
demonstration per group; the groups are k-means clusters of the questions' embedding
vectors. Given ``n`` points ``x_i`` and ``k`` centres ``mu_j``, k-means minimises the
**inertia** ``sum_i min_j ||x_i - mu_j||^2`` by alternating two steps that can only
lower it:

1. assign each point to its nearest centre;
2. move each centre to the mean of its points.

It stops when the assignment no longer changes (or after ``max_iter`` rounds), at a
local minimum that depends on the start. **k-means++** {Arthur and Vassilvitskii, 2007}
starts well: the first centre is a random point, and every next one a point drawn
with probability proportional to its squared distance to the nearest centre chosen so
far. A centre that loses all its points moves to the point farthest from its centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from llmcourse.checks import check_float_tensor, check_int


@dataclass(frozen=True)
class KMeansResult:
    """``centres: (k, d)``, ``labels: (n,)`` long, the ``inertia`` and the rounds run."""

    centres: Tensor
    labels: Tensor
    inertia: float
    iterations: int


def squared_distances(x: Tensor, centres: Tensor) -> Tensor:
    """``x: (n, d)``, ``centres: (k, d)`` -> ``(n, k)`` squared Euclidean distances."""
    return (x[:, None, :] - centres[None, :, :]).pow(2).sum(-1)


def kmeans_plus_plus(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` starting centres ``(k, d)`` drawn from the rows of ``x`` by k-means++."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    chosen = [first]
    nearest = squared_distances(x, x[first : first + 1])[:, 0]
    for _ in range(1, k):
        total = nearest.sum()
        if total <= 0:  # every point sits on a centre: take any point not chosen yet
            index = next(i for i in range(n) if i not in chosen)
        else:
            probs = (nearest / total).cpu().double()
            index = int(torch.multinomial(probs, 1, generator=generator))
        chosen.append(index)
        nearest = torch.minimum(nearest, squared_distances(x, x[index : index + 1])[:, 0])
    return x[chosen].clone()


def kmeans(x: Tensor, k: int, max_iter: int = 100, seed: int = 0) -> KMeansResult:
    """Cluster the rows of ``x: (n, d)`` into ``k`` groups (see the module's text).

    Ties go to the lowest-numbered centre. The result is the same for the same ``x`` and
    ``seed``.

    Raises:
        ValueError: ``x`` is not a 2-D floating-point tensor, or ``k`` is not in
            ``[1, n]``.
    """
    check_float_tensor("x", x, ndim=2)
    check_int("k", k)
    check_int("max_iter", max_iter)
    n = x.shape[0]
    if k > n:
        raise ValueError(f"k must be at most the number of points ({n}), got {k}")
    generator = torch.Generator().manual_seed(seed)
    centres = kmeans_plus_plus(x, k, generator)
    labels = torch.full((n,), -1, dtype=torch.long, device=x.device)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        distances = squared_distances(x, centres)
        new_labels = distances.argmin(dim=1)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
        for j in range(k):
            members = labels == j
            if members.any():
                centres[j] = x[members].mean(dim=0)
            else:  # an empty cluster takes the point worst served by its centre
                worst = int(distances.gather(1, labels[:, None])[:, 0].argmax())
                centres[j] = x[worst]
                labels[worst] = j
    inertia = float(squared_distances(x, centres).gather(1, labels[:, None]).sum())
    return KMeansResult(centres, labels, inertia, iterations)
