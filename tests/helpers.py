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
