"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def snapshop_cmd(data_dir: Path, bundle: Path) -> list[str]:
    """The real console entry point, run with this interpreter (the test venv)."""
    return [sys.executable, "-m", "app.cli", "--data-dir", str(data_dir), "--model", str(bundle)]


def write_catalog(root: Path, source: Path, fields: list[str], rows: list[dict[str, str]]) -> Path:
    """``rows`` of the catalog at ``source`` as a catalog at ``root``, images symlinked (so
    nothing of the shared catalog is copied)."""
    import csv

    (root / "images").mkdir(parents=True, exist_ok=True)
    with (root / "products.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        for name in row["image_files"].split(";"):
            link = root / "images" / name
            if not link.exists():
                link.symlink_to(source / "images" / name)
    return root


def copy_data_dir(source: Path, target: Path) -> Path:
    """A copy of an ingested data dir without its SQLite files (profiles, marks, query sets).

    For tests that write to a data dir: what they save then reaches no other test.
    """
    import shutil

    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns("*.sqlite*"))
    return target


@contextmanager
def running_server(
    base_cmd: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 60,
    log_file: Path | None = None,
) -> Iterator[str]:
    """``snapshop serve`` on a free loopback port until the block ends; yields its base URL.

    The server's output goes to a file (``log_file``, else a temporary one), not a pipe: a
    pipe nobody reads fills up with access logs and stalls the server mid-test.
    """
    import subprocess
    import tempfile
    import time

    import httpx
    import pytest

    port = free_port()
    with log_file.open("w+") if log_file is not None else tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            [*base_cmd, "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"server exited early:\n{log.read()[-5000:]}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"server did not answer /healthz within {timeout:.0f} s")
                time.sleep(0.3)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)
