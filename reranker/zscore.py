"""Z-score normalised linear fusion.

Montague and Aslam, "Relevance Score Normalization for Metasearch", CIKM 2001. Each list's
scores become ``(s - mean) / std``, then shifted so the list's lowest item gets 0: the same as an
item missing from the list. Without the shift, an item listed below the mean would get a negative
contribution and rank below items the list never returned. That breaks monotonicity: an item
that beats another in every list could fall below it. The shift moves every item of a list by
the same amount, so it changes nothing within the list. A list whose scores are all equal gives
each of them 1, as min-max does.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np

from reranker.ordering import Fused
from reranker.scored import fuse_scores

T = TypeVar("T", bound=Hashable)


def zscore_normalise(scores: np.ndarray) -> np.ndarray:
    std = float(scores.std())
    if std <= 1e-12:
        return np.ones_like(scores)
    z = (scores - scores.mean()) / std
    out: np.ndarray = z - z.min()
    return out


def zscore_fuse(
    lists: Sequence[Sequence[tuple[T, float]]], weights: Sequence[float] | None = None
) -> list[Fused[T]]:
    return fuse_scores(lists, zscore_normalise, weights)
