"""Prometheus metrics: one registry per app (or CLI run), never the library's global one.

A registry per instance keeps apps built side by side (tests, a benchmark beside a server)
from sharing or double-registering families. Every family is named ``snapshop_*`` with its
unit. Labels hold bounded values only: a route *template*, a status code, a leg or stage name,
a tower; never a raw path, a query or a product id.

Several server processes (``snapshop serve --workers N``) share one scrape through
prometheus-client's multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set (``serve`` sets
it for its workers), each process writes its counters and histograms to files there, and
``/metrics`` on any worker sums them over all of them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, write_to_textfile

from app.search.leg_names import LEGS
from app.store import StoreError, VectorStore

log = logging.getLogger(__name__)

# Seconds: from a sub-millisecond BM25 leg to a search cut off at its timeout.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
# Inputs per model run: 1 (a typed query) to several micro-batched photos of 3 views each.
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
# How long a product count read by a scrape is reused while the point count stays the same:
# counting products reads every point's product id.
PRODUCTS_TTL_S = 300.0
LEG_PREFIX = "leg_"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# No ``*_created`` series beside every counter and histogram: Prometheus's text format does not
# use them, and they would double the lines of a scrape (a process-wide switch of the library).
disable_created_metrics()  # type: ignore[no-untyped-call]


class Encoding(Protocol):
    """What the info gauge reads from the encoder."""

    @property
    def model_id(self) -> str: ...

    @property
    def provider(self) -> str: ...


class IngestMetrics:
    """Ingest counters, for the server's syncs and for ``snapshop ingest --metrics-file``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "snapshop_ingest_runs",
            "Ingest runs finished, by outcome (done, failed, cancelled).",
            ["outcome"],
            registry=registry,
        )
        self.images_processed = Counter(
            "snapshop_ingest_images_processed",
            "Images read and run through the pipeline so far (counted per batch, as it goes; "
            "rejected ones included).",
            registry=registry,
        )
        self.images_embedded = Counter(
            "snapshop_ingest_images_embedded",
            "Images embedded and written by finished runs.",
            registry=registry,
        )
        self.rejects = Counter(
            "snapshop_ingest_rejects",
            "Catalog rows and images rejected by finished runs.",
            registry=registry,
        )
        self.products = Counter(
            "snapshop_ingest_products",
            "Products by what finished runs did with them (added, updated, deleted, unchanged).",
            ["change"],
            registry=registry,
        )
        self.points_written = Counter(
            "snapshop_ingest_points_written",
            "Points upserted or deleted by finished runs.",
            registry=registry,
        )
        for outcome in ("done", "failed", "cancelled"):
            self.runs.labels(outcome)
        for change in ("added", "updated", "deleted", "unchanged"):
            self.products.labels(change)

    def progress(self, images: int) -> None:
        self.images_processed.inc(images)

    def finished(self, outcome: str, counts: Mapping[str, int] | None = None) -> None:
        """A run ended; ``counts`` are its ``ingestion.runs.COUNT_FIELDS`` when it completed."""
        self.runs.labels(outcome).inc()
        if counts is None:
            return
        self.images_embedded.inc(counts.get("embedded", 0))
        self.rejects.inc(counts.get("rejected", 0))
        self.points_written.inc(counts.get("written", 0))
        for change in ("added", "updated", "deleted", "unchanged"):
            self.products.labels(change).inc(counts.get(change, 0))


def write_ingest_textfile(path: str, outcome: str, counts: Mapping[str, int] | None) -> None:
    """One run's ingest counters in the text format, for node_exporter's textfile collector
    (written atomically: a scrape never reads half a file)."""
    registry = CollectorRegistry(auto_describe=True)
    IngestMetrics(registry).finished(outcome, counts)
    write_to_textfile(path, registry)


class _StoreCollector:
    """Store size and the model in use, read when scraped (nothing to keep up to date)."""

    def __init__(self) -> None:
        self.store: VectorStore | None = None
        self.encoder: Encoding | None = None
        self._lock = threading.Lock()
        self._products: tuple[int, float, int] | None = None  # (points, when, products)

    def watch(self, store: VectorStore | None, encoder: Encoding | None) -> None:
        with self._lock:
            self._products = None  # counted in the store watched before (a model swap)
            self.store, self.encoder = store, encoder

    def _product_count(self, store: VectorStore, points: int) -> int:
        with self._lock:
            now = time.monotonic()
            cached = self._products
            if cached is not None and cached[0] == points and now - cached[1] < PRODUCTS_TTL_S:
                return cached[2]
            with store.reading():
                products = len({h.payload.get("product_id") for h in store.scan(["product_id"])})
            self._products = (points, now, products)
            return products

    def collect(self) -> Iterator[Metric]:
        store, encoder = self.store, self.encoder
        if encoder is not None:
            info = GaugeMetricFamily(
                "snapshop_model_info",
                "The model bundle being served and the ONNX Runtime provider it runs on.",
                labels=["model", "provider"],
            )
            info.add_metric([encoder.model_id, encoder.provider], 1)
            yield info
        if store is None:
            return
        up = GaugeMetricFamily(
            "snapshop_store_up",
            "1 when the store can serve (what /readyz asks of it) and answered this scrape.",
        )
        try:
            store.probe()
            points = store.info().points
            products = self._product_count(store, points)
        except Exception as exc:  # a store that is down must not break the whole scrape
            # a known store error is what /readyz reports; anything else is worth a warning
            level = logging.DEBUG if isinstance(exc, StoreError) else logging.WARNING
            log.log(level, "metrics: the store did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "snapshop_store_points", "Points in the store (one per product image).", value=points
        )
        yield GaugeMetricFamily(
            "snapshop_store_products", "Distinct products in the store.", value=products
        )


class Metrics(IngestMetrics):
    """Every family the server exposes at ``/metrics``, on its own registry.

    It is the search service's observer (``search_timings``, ``encoder_batch``), the request
    middleware's sink (``request``) and the sync jobs' ingest counters.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        super().__init__(self.registry)
        r = self.registry
        self.requests = Counter(
            "snapshop_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.errors = Counter(
            "snapshop_http_errors",
            "HTTP responses with a 4xx or 5xx status, by route template and status.",
            ["route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "snapshop_http_request_duration_seconds",
            "Time from a request's arrival to its last response byte, by method and route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "snapshop_http_requests_in_flight",
            "HTTP requests being handled now.",
            registry=r,
            multiprocess_mode="livesum",  # several workers: the sum over those alive
        )
        self.stage_seconds = Histogram(
            "snapshop_search_stage_seconds",
            "Time of each stage of a search (decode, embed_text, embed_image, predict_category, "
            "legs, fusion, facets, total), as reported in timings_ms.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.leg_seconds = Histogram(
            "snapshop_search_leg_seconds",
            "Time of each retrieval leg of a search.",
            ["leg"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.encoder_batch_size = Histogram(
            "snapshop_encoder_batch_size",
            "Inputs per query-encoder model run (texts, or photo views), by tower.",
            ["tower"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.encoder_seconds = Histogram(
            "snapshop_encoder_batch_duration_seconds",
            "Time of one query-encoder model run, by tower.",
            ["tower"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._store = _StoreCollector()
        r.register(self._store)
        # The environment is read when prometheus_client is imported, so it decides here too.
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))

    def watch(self, store: VectorStore | None, encoder: Encoding | None) -> None:
        """Report this store's size and this encoder at scrape time (None: stop)."""
        self._store.watch(store, encoder)

    # -- observers ---------------------------------------------------------------------------

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.labels(method, route, code).inc()
        self.request_seconds.labels(method, route).observe(seconds)
        if status >= 400:
            self.errors.labels(route, code).inc()

    def search_timings(self, timings_ms: Mapping[str, float]) -> None:
        """A search's ``timings_ms``: ``leg_<name>`` per leg, the rest per stage."""
        for key, ms in timings_ms.items():
            if key.startswith(LEG_PREFIX) and key[len(LEG_PREFIX) :] in LEGS:
                self.leg_seconds.labels(key[len(LEG_PREFIX) :]).observe(ms / 1000.0)
            else:
                self.stage_seconds.labels(key).observe(ms / 1000.0)

    def encoder_batch(self, tower: str, size: int, seconds: float) -> None:
        self.encoder_batch_size.labels(tower).observe(size)
        self.encoder_seconds.labels(tower).observe(seconds)

    # -- exposition --------------------------------------------------------------------------

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format the scraper asked for (Prometheus text or OpenMetrics)."""
        encode, content_type = choose_encoder(accept or "")
        registry = self.registry
        if self.multiprocess:
            # Every worker's counters and histograms from their files, and this one's view of
            # the store and model (the same store for all), read now.
            registry = CollectorRegistry(auto_describe=True)
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(self._store)
        return encode(registry), content_type

    def close(self) -> None:
        """This process is ending: its live gauges leave the multiprocess sums."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
