"""A readers-writer lock: many searches at once, or one catalog change, never both.

Why not the engine's own locking: qdrant-edge applies an upsert point by point and a delete as
another operation, so a search running beside a sync could see some of a product's images new
and others old (or gone). Searches hold ``reading()`` for all the store calls one answer makes;
a sync holds ``writing()`` while it writes whole products, so a reader sees each product either
before or after its change, never a mix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    """Shared readers, exclusive writers; writers go first once waiting (syncs never starve
    under a steady stream of searches). ``reading()`` is re-entrant within a thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._depth = threading.local()

    @contextmanager
    def reading(self) -> Iterator[None]:
        depth: int = getattr(self._depth, "n", 0)
        if depth == 0:
            # A nested reading() must not queue behind a waiting writer: that writer waits
            # for this very thread's outer hold, a deadlock.
            with self._cond:
                while self._writer or self._writers_waiting:
                    self._cond.wait()
                self._readers += 1
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            if depth == 0:
                with self._cond:
                    self._readers -= 1
                    if self._readers == 0:
                        self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
