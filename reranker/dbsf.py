"""Distribution-Based Score Fusion (DBSF).

Mazzeschi, "Distribution-Based Score Fusion (DBSF), a new approach to Vector Search Ranking",
2023; the method Qdrant's server offers as ``Fusion.DBSF``. Each list's scores are normalised
against its own distribution: the range ``mean ± 3·std`` is mapped to [0, 1] and values outside
it are clipped, so one outlier cannot squash the rest as it does in min-max. A list whose scores
are all equal maps them to 1.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np

from reranker.ordering import Fused
from reranker.scored import fuse_scores

T = TypeVar("T", bound=Hashable)


def dbsf_normalise(scores: np.ndarray) -> np.ndarray:
    mean, std = float(scores.mean()), float(scores.std())
    if std <= 1e-12:
        return np.ones_like(scores)
    lo, hi = mean - 3 * std, mean + 3 * std
    out: np.ndarray = np.clip((scores - lo) / (hi - lo), 0.0, 1.0)
    return out


def dbsf_fuse(
    lists: Sequence[Sequence[tuple[T, float]]], weights: Sequence[float] | None = None
) -> list[Fused[T]]:
    return fuse_scores(lists, dbsf_normalise, weights)
