"""with_heartbeat: beats while a blocking call runs, even one that holds the GIL as the
engine's index build does, never after, and passes its result or error through."""

from __future__ import annotations

import ctypes
import io
import re
import threading
import time
from pathlib import Path

import pytest

from app.observability.heartbeat import with_heartbeat

LINE = re.compile(r"^building: (\d+) s$")


def hold_gil(seconds: float) -> None:
    """Block without releasing the GIL, as qdrant-edge's optimize does (a PyDLL call keeps it)."""
    ctypes.PyDLL(None).usleep(int(seconds * 1e6))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_it_beats_while_a_call_holds_the_gil_and_stops_when_it_returns(tmp_path: Path) -> None:
    ticks: list[float] = []
    stop = threading.Event()

    def tick() -> None:  # a thread of ours: what a thread-based heartbeat would be
        while not stop.wait(0.01):
            ticks.append(time.monotonic())

    ticker = threading.Thread(target=tick)
    ticker.start()
    time.sleep(0.1)
    before = len(ticks)
    path = tmp_path / "beats.txt"
    with path.open("w") as out:

        def build() -> str:
            hold_gil(1.5)
            return "built"

        assert with_heartbeat(build, "building", every=0.3, stream=out) == "built"
    during = len(ticks) - before
    stop.set()
    ticker.join()
    assert during <= 2  # our threads stood still the whole time
    said = _lines(path)
    assert len(said) >= 3 and all(LINE.match(s) for s in said), said
    seconds = [int(LINE.match(s).group(1)) for s in said]  # type: ignore[union-attr]
    assert seconds == sorted(seconds)
    time.sleep(0.7)
    assert _lines(path) == said  # none once the call has returned


def test_an_error_passes_through_and_the_beats_stop(tmp_path: Path) -> None:
    path = tmp_path / "beats.txt"

    def broken() -> None:
        hold_gil(0.5)
        raise RuntimeError("disk full")

    with path.open("w") as out, pytest.raises(RuntimeError, match="disk full"):
        with_heartbeat(broken, "building", every=0.2, stream=out)
    said = _lines(path)
    assert said and all(LINE.match(s) for s in said)
    time.sleep(0.5)
    assert _lines(path) == said


def test_a_stream_without_a_file_descriptor_gets_no_beats() -> None:
    out = io.StringIO()
    assert with_heartbeat(lambda: hold_gil(0.3) or 7, "building", every=0.05, stream=out) == 7
    assert out.getvalue() == ""
