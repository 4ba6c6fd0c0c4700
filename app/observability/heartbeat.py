"""Keep a long blocking call talking: a step that runs for minutes (an HNSW build inside the
engine, which reports nothing until it returns) still shows it is alive.

The beats come from a child process, not a thread: qdrant-edge holds the GIL for the whole
build (its Python binding does not release it), so no thread of ours runs until the build
returns. A thread-based heartbeat printed nothing through a 1M-point build; the child writes
straight to the stream's file descriptor and needs nothing from this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import IO, TypeVar

from app.processes import stop

T = TypeVar("T")

# The child: a line every ``every`` seconds; it leaves when its parent is gone (a killed run
# leaves no orphan talking) and ignores Ctrl-C (the parent stops it).
_PULSE = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
every, label, parent = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
start = time.monotonic()
due = start + every
while os.getppid() == parent:
    time.sleep(max(0.0, min(1.0, due - time.monotonic())))
    if time.monotonic() >= due:
        print(f"{label}: {time.monotonic() - start:.0f} s", flush=True)
        due += every
"""


def with_heartbeat(
    fn: Callable[[], T], label: str, every: float = 15.0, stream: IO[str] | None = None
) -> T:
    """``fn()``, while a child process writes ``"<label>: <seconds> s"`` to ``stream`` (stderr
    by default) every ``every`` seconds; none after it returns. A stream without a file
    descriptor gets no beats."""
    out = stream if stream is not None else sys.stderr
    try:
        out.flush()  # what was said before the beats comes before them
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):
        return fn()
    child = subprocess.Popen(
        [sys.executable, "-c", _PULSE, str(every), label, str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=fd,
        close_fds=True,
    )
    try:
        return fn()
    finally:
        stop(child, grace_s=5)
