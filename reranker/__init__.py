"""Fusion and evaluation maths: pure functions over plain sequences, no I/O, no engine types.

One module per method: ``rrf`` (plain and weighted), ``minmax``, ``zscore``, ``dbsf``; and one per
metric under ``metrics``. ``fuse`` dispatches by method name for callers that take it from a
configuration (fusion profiles).

Rank convention everywhere: ranks start at 1; RRF's default k is 60 (Qdrant counts from 0).
"""

from collections.abc import Hashable, Sequence
from typing import Literal, TypeVar

from reranker.dbsf import dbsf_fuse
from reranker.minmax import minmax_fuse
from reranker.ordering import Fused
from reranker.rrf import DEFAULT_K, rrf, rrf_fuse
from reranker.zscore import zscore_fuse

T = TypeVar("T", bound=Hashable)
Method = Literal["rrf", "minmax", "zscore", "dbsf"]
METHODS: tuple[Method, ...] = ("rrf", "minmax", "zscore", "dbsf")


def fuse(
    method: Method,
    lists: Sequence[Sequence[tuple[T, float]]],
    weights: Sequence[float] | None = None,
    k: int = DEFAULT_K,
) -> list[Fused[T]]:
    """Fuse ``lists[i]`` = ``(item, raw score)`` best first with the named method.

    RRF uses only the order of each list; the others normalise the raw scores.
    """
    if method == "rrf":
        return rrf_fuse([[item for item, _ in pairs] for pairs in lists], k, weights)
    if method == "minmax":
        return minmax_fuse(lists, weights)
    if method == "zscore":
        return zscore_fuse(lists, weights)
    if method == "dbsf":
        return dbsf_fuse(lists, weights)
    raise ValueError(f"unknown fusion method {method!r}; one of {', '.join(METHODS)}")


__all__ = [
    "DEFAULT_K",
    "METHODS",
    "Fused",
    "Method",
    "dbsf_fuse",
    "fuse",
    "minmax_fuse",
    "rrf",
    "rrf_fuse",
    "zscore_fuse",
]
