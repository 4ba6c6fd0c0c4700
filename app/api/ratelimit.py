"""Per-client rate limit on the public search routes (the ``limits`` library, in memory)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class RateLimit:
    """``rates`` (e.g. ``10/second;300/minute``) per client key, each a moving window.

    A moving window admits at most N requests in any period: a client may burst up to N, then
    gets one more per expired request, as a token bucket of size N would refill.
    """

    def __init__(self, rates: str) -> None:
        self.items: list[RateLimitItem] = parse_many(rates)
        self.rates = rates
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> float | None:
        """Count one request of ``key``; None if allowed, else seconds until it would be."""
        for item in self.items:
            if not self._limiter.hit(item, "search", key):
                reset = self._limiter.get_window_stats(item, "search", key).reset_time
                return max(reset - time.time(), 0.0)
        return None


def retry_after(seconds: float) -> str:
    """``Retry-After`` in whole seconds, at least 1 (0 would invite a hot retry loop)."""
    return str(max(1, math.ceil(seconds)))
