"""Live sync: the server runs catalog ingests itself, in a background thread, one at a time.

An embedded store can be opened by one process only, so while ``serve`` runs it is the only
process that can write the store: ``POST /v1/admin/sync`` (and ``snapshop ingest``, which hands
its run to a running server) start a job here. Searches go on meanwhile; the store's
readers-writer lock keeps each product whole for them (``app/store/rwlock.py``).

A sync writes the live collection, holding its generation (``app/api/serving.py``) until it
ends, or with ``new_collection`` builds another model's collection beside it for a swap.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.api.serving import Live, SyncTarget
from app.observability.metrics import IngestMetrics
from ingestion.sync import SyncOptions, recorded_ingest

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
KEEP_JOBS = 50  # finished jobs remembered for GET /v1/admin/sync/{job}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SyncBusyError(RuntimeError):
    """A sync is already running (the message names it)."""


class _Cancelled(Exception):
    """Raised inside the pipeline's progress callback when the server shuts down."""


@dataclass
class SyncJob:
    job: str
    catalog: str
    options: SyncOptions
    state: str = QUEUED
    images_done: int = 0
    images_total: int | None = None
    started_at: str = field(default_factory=_now)
    ended_at: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    collection: str | None = None  # the collection written, once known
    model: str | None = None  # the model embedding for it, once loaded

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "state": self.state,
            "catalog": self.catalog,
            "options": asdict(self.options),
            "progress": {"images_done": self.images_done, "images_total": self.images_total},
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "result": self.result,
            "error": self.error,
            "collection": self.collection,
            "model": self.model,
        }


class SyncJobs:
    """The server's sync jobs: at most one running; the last ``KEEP_JOBS`` remembered."""

    def __init__(
        self,
        live: Live,
        data_dir: Path,
        default_batch_size: int = 32,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self._live = live
        self._metrics = metrics
        self._data_dir = data_dir
        self._batch = default_batch_size
        self._jobs: dict[str, SyncJob] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, catalog: Path, options: SyncOptions) -> SyncJob:
        with self._lock:
            if self._stop.is_set():
                raise SyncBusyError("the server is shutting down")
            running = [j for j in self._jobs.values() if j.state in (QUEUED, RUNNING)]
            if running:
                j = running[0]
                raise SyncBusyError(
                    f"sync {j.job} of {j.catalog} is still running (started {j.started_at}); "
                    "one sync at a time: wait for it (GET /v1/admin/sync/{job})"
                )
            job = SyncJob(job=uuid.uuid4().hex[:12], catalog=str(catalog), options=options)
            self._jobs[job.job] = job
            while len(self._jobs) > KEEP_JOBS:
                del self._jobs[next(iter(self._jobs))]
            self._thread = threading.Thread(
                target=self._run, args=(job,), name=f"sync-{job.job}", daemon=True
            )
            self._thread.start()
            return job

    def running(self) -> str | None:
        """The running sync, described; None when none runs."""
        with self._lock:
            for j in self._jobs.values():
                if j.state in (QUEUED, RUNNING):
                    return f"sync {j.job} of {j.catalog} is running"
        return None

    def get(self, job: str) -> SyncJob | None:
        with self._lock:
            return self._jobs.get(job)

    def close(self, timeout: float = 60.0) -> None:
        """Stop a running job at its next batch (the next run completes it) and wait for it,
        so that the store is never closed under a writer."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _target(self, options: SyncOptions) -> AbstractContextManager[SyncTarget]:
        """The live collection (held for the whole sync: a swap waits for it), or with
        ``new_collection`` the collection of ``model`` beside it."""
        if options.new_collection:
            assert options.model is not None  # the route requires it
            return self._live.building(Path(options.model))
        return self._serving()

    @contextmanager
    def _serving(self) -> Iterator[SyncTarget]:
        with self._live.lease() as gen:
            yield SyncTarget(gen.store, gen.encoder, gen.bundle, gen.collection)

    def _run(self, job: SyncJob) -> None:
        def progress(n: int, total: int) -> None:
            if self._stop.is_set():
                raise _Cancelled("the server shut down during the sync")
            job.images_done += n
            job.images_total = total
            if self._metrics is not None:
                self._metrics.progress(n)

        job.state = RUNNING
        try:
            with self._target(job.options) as target:
                job.collection, job.model = target.collection, target.encoder.model_id
                outcome = recorded_ingest(
                    Path(job.catalog),
                    target.store,
                    target.encoder,
                    self._data_dir,
                    job.options,
                    default_batch_size=self._batch,
                    progress=progress,
                    bundle=target.bundle,
                )
        except _Cancelled as exc:
            job.state, job.error = CANCELLED, str(exc)
        except Exception as exc:  # any failure ends this job, never the server
            log.exception("sync %s of %s failed", job.job, job.catalog)
            job.state = FAILED
            job.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            job.result = outcome.to_json()
            job.images_total = job.images_total or 0
            job.state = DONE
        finally:
            job.ended_at = _now()
            if self._metrics is not None:
                counts = job.result["counts"] if job.result is not None else None
                self._metrics.finished(job.state, counts)
