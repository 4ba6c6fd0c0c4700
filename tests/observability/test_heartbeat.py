"""with_heartbeat: beats while a blocking call runs, never after, and passes its result or
error through."""

from __future__ import annotations

import threading
import time

import pytest

from app.observability.heartbeat import with_heartbeat


def test_it_beats_while_the_call_runs_and_stops_when_it_returns() -> None:
    beats: list[float] = []
    release = threading.Event()

    def slow() -> str:
        # Blocks until three beats have come: the beats run beside the call, not after it.
        while len(beats) < 3:
            time.sleep(0.005)
        release.set()
        return "built"

    assert with_heartbeat(slow, beats.append, every=0.01) == "built"
    assert release.is_set() and len(beats) >= 3
    assert beats == sorted(beats) and beats[0] > 0
    count = len(beats)
    time.sleep(0.05)
    assert len(beats) == count  # none once the call has returned


def test_an_error_passes_through_and_the_beats_stop() -> None:
    beats: list[float] = []

    def broken() -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        with_heartbeat(broken, beats.append, every=0.01)
    count = len(beats)
    time.sleep(0.05)
    assert len(beats) == count
