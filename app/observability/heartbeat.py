"""Keep a long blocking call talking: a step that runs for minutes (an HNSW build inside the
engine, which reports nothing until it returns) still shows it is alive."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def with_heartbeat(fn: Callable[[], T], beat: Callable[[float], None], every: float = 15.0) -> T:
    """``fn()``, calling ``beat(seconds so far)`` from another thread every ``every`` seconds
    while it runs (never after it has returned)."""
    done = threading.Event()
    started = time.monotonic()

    def pulse() -> None:
        while not done.wait(every):
            beat(time.monotonic() - started)

    thread = threading.Thread(target=pulse, name="heartbeat", daemon=True)
    thread.start()
    try:
        return fn()
    finally:
        done.set()
        thread.join()
