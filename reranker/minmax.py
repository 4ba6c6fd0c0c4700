"""Min-max normalised linear fusion (CombSUM over min-max scores).

Lee, "Analyses of Multiple Evidence Combination", SIGIR 1997; the linear form with per-list
weights as analysed by Bruch, Gai and Ingber, ACM TOIS 2023. Each list's scores are mapped to
[0, 1] by ``(s - min) / (max - min)``; a list whose scores are all equal maps them all to 1.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np

from reranker.ordering import Fused
from reranker.scored import fuse_scores

T = TypeVar("T", bound=Hashable)


def minmax_normalise(scores: np.ndarray) -> np.ndarray:
    lo, hi = float(scores.min()), float(scores.max())
    if hi - lo <= 1e-12:
        return np.ones_like(scores)
    out: np.ndarray = (scores - lo) / (hi - lo)
    return out


def minmax_fuse(
    lists: Sequence[Sequence[tuple[T, float]]], weights: Sequence[float] | None = None
) -> list[Fused[T]]:
    return fuse_scores(lists, minmax_normalise, weights)
