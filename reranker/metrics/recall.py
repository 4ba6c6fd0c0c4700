"""Recall at a cut-off: the share of a query's relevant items found in its top ``k``.

Standard IR definition (Manning, Raghavan and Schütze, *Introduction to Information
Retrieval*, 2008, ch. 8). For one relevant item it is the hit rate ("is the answer in the top k").
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence


def recall_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not relevant:
        return 0.0
    found = {item for item in ranked[:k] if item in relevant}
    return len(found) / len(relevant)
