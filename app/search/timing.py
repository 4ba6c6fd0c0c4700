"""Stage timings for ``SearchResponse.timings_ms``: milliseconds, rounded to microseconds; and
the observer that hears them (the server's metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol

from app.store import Hit


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter()`` reading)."""
    return round((time.perf_counter() - start) * 1000.0, 3)


def timed(fn: Callable[[], list[Hit]]) -> tuple[list[Hit], float]:
    """Run one leg: its hits and how long it took."""
    t = time.perf_counter()
    hits = fn()
    return hits, elapsed_ms(t)


class SearchObserver(Protocol):
    """Hears what searches measured, to count it elsewhere (``app.observability.metrics``)."""

    def search_timings(self, timings_ms: Mapping[str, float]) -> None:
        """A finished search's ``timings_ms``."""

    def encoder_batch(self, tower: str, size: int, seconds: float) -> None:
        """One run of the query encoder: ``tower`` "text" or "image", inputs in the batch."""
