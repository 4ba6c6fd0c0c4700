"""Reciprocal rank fusion, plain and weighted.

Cormack, Clarke and Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and individual Rank
Learning Methods", SIGIR 2009. The weighted form (one weight per list) is the usual extension,
as in Bruch, Gai and Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval", ACM TOIS 2023.

Rank convention: ranks start at **1** (the best item of a list has rank 1), so an item's
contribution from one list is ``w / (k + rank)`` with ``k = 60`` by default, as in the paper.
(Qdrant's server-side RRF counts ranks from 0; scores from the two therefore differ slightly.)
Only ranks matter: raw scores are ignored.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

from reranker.ordering import Fused, check_weights, first_positions, order

T = TypeVar("T", bound=Hashable)

DEFAULT_K = 60


def rrf_fuse(
    rankings: Sequence[Sequence[T]],
    k: int = DEFAULT_K,
    weights: Sequence[float] | None = None,
) -> list[Fused[T]]:
    """Fused items best first, each with its per-list contributions ``w_i / (k + rank_i)``.

    ``rankings[i]`` lists item ids best first. A list with weight 0 is ignored entirely (its
    items are not even added with score 0).
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    w = check_weights(len(rankings), weights)
    parts: dict[T, list[float]] = {}
    best: dict[T, int] = {}  # each item's best rank over the lists that count
    for i, (ranking, weight) in enumerate(zip(rankings, w, strict=True)):
        if weight == 0:
            continue
        for rank, item in first_positions(ranking):
            row = parts.get(item)
            if row is None:
                row = parts[item] = [0.0] * len(rankings)
                best[item] = rank
            elif rank < best[item]:
                best[item] = rank
            row[i] = weight / (k + rank)
    return order(parts, best)


def rrf(
    rankings: Sequence[Sequence[T]],
    k: int = DEFAULT_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[T, float]]:
    """``(item, fused score)`` best first; see ``rrf_fuse``."""
    return [(f.item, f.score) for f in rrf_fuse(rankings, k, weights)]
