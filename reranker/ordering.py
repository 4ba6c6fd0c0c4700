"""What every fusion method shares: per-list contributions summed, then a deterministic order.

Every method in this package reduces to ``contributions[item][i]``, the part of the fused score
that list ``i`` gives ``item`` (0 where the list does not hold it). The fused score is their
sum, so an ``explain`` view adds up by construction.

Ties in fused score are broken by the best rank the item reached in any list (ranks start at
1), then by the item itself (``str`` order). Neither depends on the order of the lists, so
permuting the lists never changes the output.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T", bound=Hashable)


class Fused(NamedTuple, Generic[T]):
    """One fused item. A tuple, not a frozen dataclass: every query builds one per candidate
    (~300 for a typed query), and at 100k the fusion step took 1.35-1.43 ms as a dataclass
    against 1.03-1.18 ms as a tuple (in-process, paired)."""

    item: T
    score: float
    contributions: tuple[float, ...]  # one per input list; they sum to ``score``
    best_rank: int


def check_weights(n_lists: int, weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * n_lists
    if len(weights) != n_lists:
        raise ValueError(f"{len(weights)} weights for {n_lists} lists")
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    return [float(w) for w in weights]


def first_positions(items: Sequence[T]) -> list[tuple[int, T]]:
    """``(rank, item)`` from rank 1; a repeated id counts once, at its first (best) position.

    Later items keep their positions (a repeat does not move them up), as in the input.
    """
    seen: set[T] = set()
    out: list[tuple[int, T]] = []
    for rank, item in enumerate(items, start=1):
        if item not in seen:
            seen.add(item)
            out.append((rank, item))
    return out


def order(contributions: Mapping[T, Sequence[float]], best_rank: Mapping[T, int]) -> list[Fused[T]]:
    """``contributions``' items as ``Fused``, best first. The parts must be ``float`` already
    (every method here makes them so): converting each one again took a third of this step."""
    fused = [
        Fused(item, float(sum(parts)), tuple(parts), best_rank[item])
        for item, parts in contributions.items()
    ]
    fused.sort(key=lambda f: (-f.score, f.best_rank, str(f.item)))
    return fused
