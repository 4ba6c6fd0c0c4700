"""The real server for the benchmark: ``snapshop serve`` in a subprocess on a loopback port.

Started as a person starts it (same entry point, own process, its own data dir), so what the
clients measure includes HTTP, the ASGI stack and the process's real memory. Memory comes from
``/proc/<pid>/status``: VmRSS (resident now), VmHWM (the peak), and RssAnon / RssFile (heap vs
memory-mapped files: a store with vectors on disk shows up in the second).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.processes import stop

MEMORY_FIELDS = {
    "VmRSS": "rss_mb",
    "VmHWM": "peak_rss_mb",
    "RssAnon": "anon_mb",
    "RssFile": "file_mb",
}
# Settings of the environment that would change what is measured: the benchmark's server
# runs without a per-client rate limit, whatever the shell sets.
UNSET_ENV = ("SNAPSHOP_SEARCH_RATE_LIMIT", "SNAPSHOP_DATA_DIR", "SNAPSHOP_MODEL")


class ServerError(RuntimeError):
    """The server did not start or stopped; the message holds the end of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def memory_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now and at its peak, in MB, from ``/proc/<pid>/status``."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in MEMORY_FIELDS:
            out[MEMORY_FIELDS[key]] = round(int(value.split()[0]) / 1024, 1)  # kB
    return out


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    started_s: float  # from spawning the process to the first ready answer

    def memory(self) -> dict[str, float]:
        return memory_mb(self.pid)


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return ""


@contextmanager
def serving(
    data_dir: Path, bundle: Path, device: str, timeout_s: float = 900.0
) -> Iterator[Server]:
    """``snapshop serve`` over ``data_dir`` until the block ends, once ``/readyz`` says ready.

    Its output goes to ``<data_dir>/server.log`` (a file: a pipe nobody reads would stall it).
    """
    port = free_port()
    log_path = data_dir / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in UNSET_ENV}
    cmd = [
        sys.executable,
        "-m",
        "app.cli",
        "--data-dir",
        str(data_dir),
        "--model",
        str(bundle),
        "--device",
        device,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise ServerError(
                        f"the server exited early ({proc.returncode}):\n{_tail(log_path)}"
                    )
                try:
                    if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"the server was not ready in {timeout_s:.0f} s:\n{_tail(log_path)}"
                    )
                time.sleep(0.2)
            yield Server(url, proc.pid, round(time.perf_counter() - t0, 1))
            if proc.poll() is not None:
                raise ServerError(f"the server died during the run:\n{_tail(log_path)}")
        finally:
            stop(proc, grace_s=60)
