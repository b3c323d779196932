"""How good a retriever is: recall at k.

**Recall@k** is the fraction of queries for which at least one relevant item is among
the ``k`` items the retriever ranks first. It is the measure that matters before a
reader: an answer that is not in the retrieved chunks cannot be read from them. It
grows with ``k``, and reaches 1 when ``k`` is the size of the corpus.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from llmcourse.checks import check_int


def recall_at_k(
    rankings: Sequence[Sequence[int]], relevant: Sequence[Collection[int]], k: int
) -> float:
    """The fraction of queries with a relevant item among their first ``k`` ranked ones.

    Args:
        rankings: for every query, item ids from best to worst (at least ``k`` of them).
        relevant: for every query, the ids of its relevant items (at least one).
        k: the cut-off, >= 1.

    Raises:
        ValueError: no queries, mismatched lengths, a ranking shorter than ``k``, or a
            query without relevant items.
    """
    check_int("k", k)
    if not rankings or len(rankings) != len(relevant):
        raise ValueError(
            f"need one ranking per query and at least one query, got {len(rankings)} "
            f"rankings and {len(relevant)} relevant sets"
        )
    hits = 0
    for q, (ranking, gold) in enumerate(zip(rankings, relevant, strict=True)):
        if len(ranking) < k:
            raise ValueError(f"query {q} has a ranking of {len(ranking)} items, fewer than k={k}")
        if not gold:
            raise ValueError(f"query {q} has no relevant item")
        hits += any(item in gold for item in list(ranking)[:k])
    return hits / len(rankings)
