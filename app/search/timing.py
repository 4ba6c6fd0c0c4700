"""Stage timings for ``SearchResponse.timings_ms``: milliseconds, rounded to microseconds."""

from __future__ import annotations

import time
from collections.abc import Callable

from app.store import Hit


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter()`` reading)."""
    return round((time.perf_counter() - start) * 1000.0, 3)


def timed(fn: Callable[[], list[Hit]]) -> tuple[list[Hit], float]:
    """Run one leg: its hits and how long it took."""
    t = time.perf_counter()
    hits = fn()
    return hits, elapsed_ms(t)
