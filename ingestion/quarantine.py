"""The quarantine report: every reject of an ingest run, one JSON line each, for a person to fix."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from app.files import atomic_writer
from ingestion.catalog import Reject


def run_id(now: datetime | None = None) -> str:
    """Sortable, file-name-safe id of an ingest run (UTC time to the microsecond)."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


def write_quarantine(directory: Path, run: str, rejects: Sequence[Reject]) -> Path | None:
    """``<directory>/<run>.jsonl`` with one ``{run, source, product_id, reason}`` per reject."""
    if not rejects:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run}.jsonl"
    with atomic_writer(path) as fh:  # whole or absent, never half a report
        for r in rejects:
            row = {"run": run, "source": r.source, "product_id": r.product_id, "reason": r.reason}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
