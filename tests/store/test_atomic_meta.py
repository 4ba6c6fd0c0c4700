"""The store's meta file is written atomically (``app.files``): whole, or not at all."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from app.files import atomic_writer, write_text_atomic
from app.store import EdgeStore
from app.store.edge import META_FILE


def test_write_text_atomic_replaces_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    write_text_atomic(path, "old")
    write_text_atomic(path, "new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    write_text_atomic(path, "old")
    with pytest.raises(RuntimeError), atomic_writer(path) as fh:
        fh.write("half of the ne")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_crash_while_writing_the_meta_file_leaves_no_half_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(src: str, dst: str) -> None:
        raise OSError("power cut before the rename")

    store = EdgeStore(tmp_path / "qdrant")
    # The meta text is fully written to a temporary file; the rename never happens.
    monkeypatch.setattr("app.files.os.replace", crash)
    with pytest.raises(OSError, match="power cut"):
        store.ensure_collection(8, "test-model")
    monkeypatch.undo()
    store.close()
    # No meta file at all (never a truncated one), and no temporary file left behind.
    assert not (tmp_path / "qdrant" / META_FILE).exists()
    assert not list((tmp_path / "qdrant").glob(f".{META_FILE}*"))

    # A store that crashed there is "empty" and is created afresh.
    store = EdgeStore(tmp_path / "qdrant")
    store.ensure_collection(8, "test-model")
    meta = json.loads((tmp_path / "qdrant" / META_FILE).read_text())
    assert meta["dim"] == 8 and meta["model_id"] == "test-model"
    store.close()
