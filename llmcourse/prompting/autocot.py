"""Auto-CoT: chain-of-thought demonstrations built by the model itself.

Few-shot chain-of-thought prompts need solved examples with their reasoning, which
someone has to write. Auto-CoT {Zhang et al., 2023} builds them automatically in two
steps:

1. **Cluster** (:func:`cluster_questions`): embed every question of the task, cluster
   the vectors into ``k`` groups with k-means (:func:`~llmcourse.prompting.kmeans.kmeans`),
   and sort each group's questions by their distance to its centre.
2. **Construct** (:func:`construct_demonstrations`): in every cluster, from the question
   nearest the centre outwards, let the model answer it zero-shot with "Let's think
   step by step.", and keep the first question whose chain passes simple checks (in
   the paper: at most 60 tokens of question and 5 reasoning steps), one demonstration
   per cluster.

The clusters make the demonstrations diverse: one from each kind of question, so that
a mistake the model makes on one kind is not copied into every demonstration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from llmcourse.checks import check_float_tensor, check_int
from llmcourse.prompting.kmeans import kmeans, squared_distances


def cluster_questions(embeddings: Tensor, k: int, seed: int = 0) -> list[list[int]]:
    """Algorithm 1 of Auto-CoT: ``k`` lists of question indices, one per k-means cluster
    of ``embeddings: (n, d)``, each sorted by distance to its centre (nearest first;
    ties by index). Clusters are listed in the order of their centres."""
    check_float_tensor("embeddings", embeddings, ndim=2)
    result = kmeans(embeddings, k, seed=seed)
    distances = squared_distances(embeddings, result.centres)
    clusters = []
    for j in range(k):
        members = (result.labels == j).nonzero()[:, 0].tolist()
        clusters.append(sorted(members, key=lambda i: (float(distances[i, j]), i)))
    return clusters


def construct_demonstrations(
    clusters: Sequence[Sequence[int]],
    answer: Callable[[int], str],
    accept: Callable[[int, str], bool],
    max_tries: int = 10,
) -> list[tuple[int, str]]:
    """Algorithm 2 of Auto-CoT: one ``(question index, chain)`` per cluster.

    Args:
        clusters: question indices per cluster, nearest the centre first
            (:func:`cluster_questions`).
        answer: ``answer(i)`` -> the model's zero-shot chain of thought for question ``i``.
        accept: ``accept(i, chain)`` -> whether the pair passes the selection checks.
        max_tries: questions tried per cluster before it is given up (no demonstration).
    """
    check_int("max_tries", max_tries)
    demonstrations = []
    for members in clusters:
        for i in list(members)[:max_tries]:
            chain = answer(i)
            if accept(i, chain):
                demonstrations.append((i, chain))
                break
    return demonstrations
