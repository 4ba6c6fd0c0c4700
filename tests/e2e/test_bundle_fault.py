"""A model bundle whose file no longer matches its manifest: ``serve`` refuses to start and
says which file, before it binds a port (so nothing half-working ever answers)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.helpers import free_port, snapshop_cmd


def test_serve_refuses_a_tampered_bundle(tmp_path: Path, tiny_bundle: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    target = next(p for p in sorted(bundle.iterdir()) if p.suffix == ".onnx")
    with target.open("r+b") as fh:  # one flipped byte in the middle, size unchanged
        fh.seek(target.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    proc = subprocess.run(
        [*snapshop_cmd(tmp_path / "data", bundle), "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())  # rich wraps long lines
    assert "does not match its manifest checksum" in message
    assert target.name in message
    assert not (tmp_path / "data" / "server.json").exists()
