"""Comparing two backends' answers: the same top-k, ties allowed (qdrant-client's own pattern).

Two engines rank points of equal score in their own order, and a limit can cut a run of equal
scores anywhere, so ids are compared per group of tied scores: every group that the limit did
not cut must hold the same ids; the last group, when the limit cut it, only the same scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from app.store import Hit

# Cosine similarities and BM25 scores are float32 sums in both engines; they may differ in the
# last bits (summation order), never by more than this.
TOLERANCE = 1e-4


def tie_groups(scores: Sequence[float], tol: float = TOLERANCE) -> list[tuple[int, int]]:
    """[start, end) of each run of equal scores (within ``tol`` of the run's first)."""
    groups: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(scores) + 1):
        if i == len(scores) or abs(scores[i] - scores[start]) > tol:
            groups.append((start, i))
            start = i
    return groups


def assert_same_hits(
    expected: Sequence[Hit], got: Sequence[Hit], limit: int, what: str = ""
) -> None:
    """``got`` is ``expected`` up to the order of tied scores; same payloads for the same ids."""
    assert len(got) == len(expected), (what, len(expected), len(got))
    for rank, (e, g) in enumerate(zip(expected, got, strict=True)):
        assert g.score == pytest.approx(e.score, abs=TOLERANCE), (what, rank, e, g)
    groups = tie_groups([h.score for h in expected])
    for n, (start, end) in enumerate(groups):
        cut = n == len(groups) - 1 and len(expected) == limit
        if not cut:
            want = {h.id for h in expected[start:end]}
            have = {h.id for h in got[start:end]}
            assert have == want, (what, start, end)
    by_id = {h.id: h.payload for h in expected}
    for h in got:
        if h.id in by_id:
            assert h.payload == by_id[h.id], (what, h.id)
