"""Disk full in the middle of a sync: the run fails and says why, every product stays whole
(as it was or as it is), and the next run completes the sync."""

from __future__ import annotations

import csv
import errno
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from app.store import EdgeStore
from ingestion.runs import list_runs
from ingestion.sync import SyncOptions, recorded_ingest
from tests.fakes import FakeEncoder


class FillingDisk:
    """The engine shard, whose ``update`` fails with ENOSPC from its ``after``-th call on."""

    def __init__(self, shard: Any, after: int) -> None:
        self.shard = shard
        self.after = after
        self.calls = 0

    def update(self, op: Any) -> None:
        self.calls += 1
        if self.calls >= self.after:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.shard.update(op)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.shard, name)


def _products(store: EdgeStore) -> dict[str, set[str | None]]:
    """Product -> the content hashes its points carry (one, when the product is whole)."""
    found: dict[str, set[str | None]] = defaultdict(set)
    for hit in store.scan(["product_id", "content_hash"]):
        found[str(hit.payload["product_id"])].add(hit.payload.get("content_hash"))
    return found


def test_disk_full_mid_sync_then_the_next_run_completes(
    tmp_path: Path, mini_catalog: Path, fake_encoder: FakeEncoder
) -> None:
    data = tmp_path / "data"
    store = EdgeStore(data / "qdrant")
    try:
        recorded_ingest(mini_catalog, store, fake_encoder, data, SyncOptions())
        before = _products(store)

        edited = tmp_path / "edited"
        edited.mkdir()
        (edited / "images").symlink_to(mini_catalog / "images")
        with (mini_catalog / "products.csv").open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields, rows = list(reader.fieldnames or []), list(reader)
        for row in rows[:20]:
            row["title"] = f"{row['title']} restocked"
        with (edited / "products.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows[:-5])  # 5 deleted

        real = store._shard
        store._shard = FillingDisk(real, after=3)  # type: ignore[assignment]
        with pytest.raises(OSError, match="No space left"):
            recorded_ingest(
                edited, store, fake_encoder, data, SyncOptions(prune=True, batch_size=4)
            )
        store._shard = real
        middle = _products(store)
        assert all(len(hashes) == 1 for hashes in middle.values())  # every product whole
        assert set(middle) == set(before)  # the deletes come last: none happened
        changed = [p for p in middle if middle[p] != before[p]]
        assert 0 < len(changed) < 20  # some updates landed before the disk filled
        failed = list_runs(data / "runs")[0]
        assert failed.state == "failed" and "No space left" in (failed.last_error or "")

        done = recorded_ingest(edited, store, fake_encoder, data, SyncOptions(prune=True))
        counts = done.report
        assert (counts.updated, counts.deleted, counts.products) == (20 - len(changed), 5, 45)
        after = _products(store)
        assert len(after) == 45 and all(len(h) == 1 for h in after.values())
        assert store.count() == 45
    finally:
        store.close()
