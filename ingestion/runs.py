"""Indexer health: one JSON record per ingest run under ``<data-dir>/runs/``.

A run writes its record when it starts (state ``running``) and again when it ends (``ok`` or
``failed``), so a run killed in between is visible: ``list_runs`` reports a ``running`` record
whose process is gone as ``interrupted``. ``snapshop status`` and ``GET /v1/admin/indexers`` read
these records; nothing else does.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.files import write_text_atomic
from ingestion.pipeline import IngestReport

RUNNING, OK, FAILED, INTERRUPTED = "running", "ok", "failed", "interrupted"
COUNT_FIELDS = (
    "products",
    "images",
    "added",
    "updated",
    "deleted",
    "unchanged",
    "rejected",
    "embedded",
    "written",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class RunRecord:
    run: str
    catalog: str
    started_at: str
    state: str = RUNNING
    ended_at: str | None = None
    seconds: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    images_per_s: float | None = None
    errors: int = 0  # rejected rows/images, plus one if the run itself failed
    last_error: str | None = None
    quarantine: str | None = None
    index: str | None = None
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _path(directory: Path, run: str) -> Path:
    return directory / f"{run}.json"


def _write(directory: Path, record: RunRecord) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = _path(directory, record.run)
    write_text_atomic(path, json.dumps(record.to_json(), indent=2, ensure_ascii=False))


def start_run(directory: Path, run: str, catalog: Path) -> RunRecord:
    record = RunRecord(run=run, catalog=str(catalog.resolve()), started_at=_now())
    _write(directory, record)
    return record


def finish_run(
    directory: Path,
    record: RunRecord,
    report: IngestReport,
    quarantine: Path | None = None,
    index: str | None = None,
) -> RunRecord:
    record.state = OK
    record.ended_at = _now()
    record.seconds = round(report.seconds, 3)
    record.counts = {name: int(getattr(report, name)) for name in COUNT_FIELDS}
    record.images_per_s = round(report.images_per_s, 2)
    record.errors = report.rejected
    if report.rejects:
        last = report.rejects[-1]
        record.last_error = f"{last.source}: {last.reason}"
    record.quarantine = str(quarantine) if quarantine is not None else None
    record.index = index
    _write(directory, record)
    return record


def fail_run(directory: Path, record: RunRecord, error: BaseException) -> RunRecord:
    record.state = FAILED
    record.ended_at = _now()
    started = datetime.fromisoformat(record.started_at)
    record.seconds = round((datetime.now(UTC) - started).total_seconds(), 3)
    record.errors += 1
    record.last_error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    _write(directory, record)
    return record


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def list_runs(directory: Path, limit: int = 20) -> list[RunRecord]:
    """The newest ``limit`` runs, newest first; unreadable records are skipped."""
    records: list[RunRecord] = []
    if not directory.is_dir():
        return records
    for path in sorted(directory.glob("*.json"), reverse=True)[:limit]:
        try:
            record = RunRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if (
            record.state == RUNNING
            and record.host == socket.gethostname()
            and not _alive(record.pid)
        ):
            record.state = INTERRUPTED
        records.append(record)
    return records


def indexer_health(directory: Path, limit: int = 50) -> list[dict[str, Any]]:
    """One entry per catalog ingested into this data dir: its last run and recent history."""
    by_catalog: dict[str, list[RunRecord]] = {}
    for record in list_runs(directory, limit):
        by_catalog.setdefault(record.catalog, []).append(record)
    out = []
    for catalog, runs in by_catalog.items():
        last = runs[0]
        finished = [r for r in runs if r.state == OK]
        out.append(
            {
                "catalog": catalog,
                "state": last.state,
                "healthy": last.state in (OK, RUNNING),
                "last_run": last.to_json(),
                "last_success_at": finished[0].ended_at if finished else None,
                "recent_runs": len(runs),
                "recent_failures": sum(r.state in (FAILED, INTERRUPTED) for r in runs),
            }
        )
    return out
