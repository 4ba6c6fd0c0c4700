"""Reciprocal rank fusion.

Cormack, Clarke and Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and individual Rank
Learning Methods", SIGIR 2009.

Rank convention: ranks start at **1** (the best item of a list has rank 1), so an item's
contribution from one list is ``w / (k + rank)`` with ``k = 60`` by default, as in the paper.
(Qdrant's server-side RRF counts ranks from 0; scores from the two therefore differ slightly.)
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)

DEFAULT_K = 60


def rrf(
    rankings: Sequence[Sequence[T]],
    k: int = DEFAULT_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[T, float]]:
    """Fuse ranked lists into one list of ``(item, score)``, best first.

    ``rankings[i]`` lists item ids best first; an id repeated within one list counts once, at its
    first (best) position. ``weights[i]`` scales list ``i`` (all 1 when omitted); a list with
    weight 0 is ignored entirely.
    Ties in fused score are broken by the best rank the item reached in any list, then by the
    order in which the item first appeared, scanning lists in order, so the output is
    deterministic for a given input.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")

    scores: dict[T, float] = {}
    best_rank: dict[T, int] = {}
    first_seen: dict[T, int] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if weight == 0:  # a switched-off leg must not even add its items with score 0
            continue
        seen: set[T] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            best_rank[item] = min(best_rank.get(item, rank), rank)
            first_seen.setdefault(item, len(first_seen))
    order = sorted(scores, key=lambda it: (-scores[it], best_rank[it], first_seen[it]))
    return [(item, scores[item]) for item in order]
