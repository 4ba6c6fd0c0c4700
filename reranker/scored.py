"""Shared shape of the score-based fusion methods: normalise each list, then a weighted sum.

Input: ``lists[i]`` holds ``(item, raw score)`` best first (higher is better). Each method
supplies one normalisation of a list's scores; the fused score is the weighted sum of the
normalised scores over the lists that hold the item (CombSUM, Fox and Shaw, TREC-2 1994).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

import numpy as np

from reranker.ordering import Fused, check_weights, first_positions, order

T = TypeVar("T", bound=Hashable)
Normaliser = Callable[[np.ndarray], np.ndarray]


def fuse_scores(
    lists: Sequence[Sequence[tuple[T, float]]],
    normalise: Normaliser,
    weights: Sequence[float] | None = None,
) -> list[Fused[T]]:
    w = check_weights(len(lists), weights)
    parts: dict[T, list[float]] = {}
    best: dict[T, int] = {}
    for i, (pairs, weight) in enumerate(zip(lists, w, strict=True)):
        if weight == 0 or not pairs:
            continue
        score_of = {item: float(score) for item, score in reversed(pairs)}  # first one wins
        kept = first_positions([item for item, _ in pairs])
        normed = normalise(np.asarray([score_of[it] for _, it in kept], dtype=np.float64))
        for (rank, item), value in zip(kept, normed, strict=True):
            parts.setdefault(item, [0.0] * len(lists))[i] = weight * float(value)
            best[item] = min(best.get(item, rank), rank)
    return order(parts, best)
