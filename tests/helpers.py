"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def snapshop_cmd(data_dir: Path, bundle: Path) -> list[str]:
    """The real console entry point, run with this interpreter (the test venv)."""
    return [sys.executable, "-m", "app.cli", "--data-dir", str(data_dir), "--model", str(bundle)]


def copy_data_dir(source: Path, target: Path) -> Path:
    """A copy of an ingested data dir without its SQLite files (profiles, marks, query sets).

    For tests that write to a data dir: what they save then reaches no other test.
    """
    import shutil

    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns("*.sqlite*"))
    return target
