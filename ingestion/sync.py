"""One recorded ingest run: the pipeline plus its run record and quarantine report.

The server's sync job runs exactly this; ``snapshop ingest`` records its runs the same way
(start, then ok or failed), so ``snapshop status`` and ``/v1/admin/indexers`` show both alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.store import VectorStore
from ingestion.pipeline import IngestEncoder, IngestReport, ProgressFn, ingest_catalog
from ingestion.quarantine import run_id, write_quarantine
from ingestion.runs import COUNT_FIELDS, fail_run, finish_run, start_run

# Rejects listed in a summary; the quarantine report has all of them.
SHOWN_REJECTS = 20


@dataclass(frozen=True)
class SyncOptions:
    """The ``snapshop ingest`` options that change what a run does."""

    prune: bool = False
    replace_model: bool = False
    build_index: bool = True
    batch_size: int | None = None
    workers: int | None = None
    # Build the collection of ``model`` (a bundle folder) beside the live one, for a model
    # swap, instead of syncing the live collection.
    new_collection: bool = False
    model: str | None = None


@dataclass(frozen=True)
class SyncOutcome:
    run: str
    report: IngestReport
    quarantine: Path | None
    index: str

    def to_json(self) -> dict[str, Any]:
        """What the sync job reports and ``snapshop ingest`` prints after a hand-off."""
        r = self.report
        return {
            "run": self.run,
            "counts": {name: int(getattr(r, name)) for name in COUNT_FIELDS},
            "summary": r.summary(),
            "changes": r.changes(),
            "seconds": round(r.seconds, 3),
            "images_per_s": round(r.images_per_s, 2),
            "index": self.index,
            "quarantine": str(self.quarantine) if self.quarantine is not None else None,
            "rejects": [
                {"source": x.source, "product_id": x.product_id, "reason": x.reason}
                for x in r.rejects[:SHOWN_REJECTS]
            ],
        }


def recorded_ingest(
    catalog_dir: Path,
    store: VectorStore,
    encoder: IngestEncoder,
    data_dir: Path,
    options: SyncOptions,
    default_batch_size: int = 32,
    progress: ProgressFn | None = None,
    bundle: Path | None = None,
) -> SyncOutcome:
    """Ingest ``catalog_dir`` into ``store``, recorded under ``data_dir/runs`` (and rejects
    under ``data_dir/quarantine``); a run that raises is recorded as failed, then re-raised.
    ``bundle``: the encoder's bundle, recorded with a collection the run creates."""
    run = run_id()
    runs_dir = data_dir / "runs"
    record = start_run(runs_dir, run, catalog_dir)
    try:
        report = ingest_catalog(
            catalog_dir,
            store,
            encoder,
            batch_size=options.batch_size or default_batch_size,
            workers=options.workers,
            progress=progress,
            build_index=options.build_index,
            replace_model=options.replace_model,
            prune=options.prune,
            bundle=bundle,
        )
        index = store.index_status().describe()
    except BaseException as exc:
        fail_run(runs_dir, record, exc)
        raise
    quarantine = write_quarantine(data_dir / "quarantine", run, report.rejects)
    finish_run(runs_dir, record, report, quarantine, index)
    return SyncOutcome(run, report, quarantine, index)
