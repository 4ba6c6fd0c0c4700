"""Reciprocal rank of the first relevant item (mean over queries gives MRR).

Voorhees, "The TREC-8 Question Answering Track Report", TREC 1999.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence


def mrr(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int | None = None) -> float:
    """1 / rank of the first relevant item within the top ``k`` (all when None), else 0."""
    cut = ranked if k is None else ranked[:k]
    for rank, item in enumerate(cut, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0
