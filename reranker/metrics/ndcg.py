"""Normalised discounted cumulative gain at ``k``, binary relevance.

Järvelin and Kekäläinen, "Cumulated gain-based evaluation of IR techniques", ACM TOIS 2002.
Gain 1 for a relevant item at rank r, discounted by ``1 / log2(r + 1)``; normalised by the
gain of the ideal ranking (all relevant items first), as trec_eval and ranx do.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Sequence


def ndcg_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not relevant:
        return 0.0
    seen: set[Hashable] = set()
    dcg = 0.0
    for rank, item in enumerate(ranked[:k], start=1):
        if item in relevant and item not in seen:  # a repeated id earns nothing twice
            seen.add(item)
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(k, len(relevant)) + 1))
    return dcg / ideal
