"""The whole benchmark in one run: ``snapshop bench --sizes 3k,100k,1m [--quick] --json OUT``.

Per run: the encoder's speed and roofline (ONNX and the naive stack's torch), ingest images/s.
Per size (the catalog itself, or real + synthetic points up to N): the store's build, ANN
recall against exact search, the real server's memory and its end-to-end latency and
throughput for typed, photo and photo + text queries at 1, 8 and 32 clients, the same
requests through the naive stack (up to ``naive_max_points``), and the same again for a store
quantised to int8. A step that fails is recorded in ``errors`` and the run goes on, so one
broken part still leaves the rest measured; the command then exits non-zero.
"""

from __future__ import annotations

import gc
import os
import re
import time
import traceback
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from app.benchmarks import Progress
from app.benchmarks.ann_recall import (
    category_filters,
    measure_recall,
    query_vectors,
    recall_curve,
)
from app.benchmarks.http_load import run_cell
from app.benchmarks.ingest import bench_ingest
from app.benchmarks.naive import NaiveStack, compare, describe
from app.benchmarks.queries import (
    MODES,
    BenchQueries,
    find_queries_dir,
    last_catalog,
    load_queries,
)
from app.benchmarks.report import goals, machine_info
from app.benchmarks.roofline import encoder_timings
from app.benchmarks.server import serving
from app.benchmarks.sized_store import SizedStore, ensure_sized_store
from app.benchmarks.synthetic import RealPoints, SyntheticCatalog, read_points
from app.benchmarks.torch_encoder import TorchEncoder, TorchUnavailable, parity
from app.embedding import Encoder, load_image
from app.embedding.benchmark import image_latency, text_latency
from app.settings import Settings
from app.store import EdgeStore, SearchFilter

SCHEMA = 1
T = TypeVar("T")
SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([km]?)$")


def parse_sizes(text: str) -> list[tuple[str, int | None]]:
    """``"3k,100k,1m"`` -> [("3k", 3000), ...]; ``catalog`` is the catalog as ingested (None)."""
    sizes: list[tuple[str, int | None]] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if part == "catalog":
            sizes.append((part, None))
            continue
        match = SIZE_RE.match(part)
        if not match:
            raise ValueError(f"size {part!r}: give a number of points (3000, 3k, 100k, 1m)")
        scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2)]
        sizes.append((part, int(float(match.group(1)) * scale)))
    if not sizes:
        raise ValueError("give at least one size")
    return sizes


@dataclass(frozen=True)
class BenchOptions:
    sizes: tuple[tuple[str, int | None], ...]
    quick: bool = False
    device: str = "cpu"
    queries_dir: Path | None = None
    catalog_dir: Path | None = None
    machine: str | None = None
    seed: int = 0
    # The naive stack keeps every vector and payload as Python objects and scores every
    # document per BM25 term in Python: above this many points it is not run.
    naive_max_points: int = 100_000
    # Above this many points only the int8 store is built: float at 1M indexes for hours on 2
    # cores, and int8 (rescored) is the store a catalog that large serves from.
    float_max_points: int = 100_000

    @property
    def clients(self) -> tuple[int, ...]:
        return (1, 8) if self.quick else (1, 8, 32)

    def requests(self, clients: int) -> int:
        """Requests per cell: enough for stable percentiles, few enough for the time box."""
        if self.quick:
            return {1: 6, 8: 16}[clients]
        return {1: 40, 8: 96, 32: 192}[clients]

    @property
    def naive_requests(self) -> int:
        return 4 if self.quick else 20

    @property
    def recall_queries(self) -> int:
        return 12 if self.quick else 50

    @property
    def ingest_images(self) -> int:
        return 16 if self.quick else 320

    @property
    def repeats(self) -> int:
        return 2 if self.quick else 5


class Run:
    """One benchmark run: its settings, options, progress and what it has measured so far."""

    def __init__(
        self,
        settings: Settings,
        options: BenchOptions,
        progress: Progress,
        say: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.options = options
        self.progress = progress
        self.say = say
        self.errors: list[dict[str, str]] = []

    def step(self, name: str, fn: Callable[[], T]) -> T | None:
        """``fn()``, or None with the error recorded (the run goes on without it)."""
        self.say(name)
        try:
            return fn()
        except Exception as exc:  # recorded, and the command fails at the end
            self.errors.append(
                {
                    "step": name,
                    "error": f"{type(exc).__name__}: {exc}",
                    "where": "".join(traceback.format_exception(exc)[-3:])[-1500:],
                }
            )
            self.say(f"error in {name}: {type(exc).__name__}: {exc}")
            return None


def run_bench(
    settings: Settings, options: BenchOptions, progress: Progress, say: Callable[[str], None]
) -> dict[str, Any]:
    """Everything measured, as the results file's JSON (``errors`` lists what failed)."""
    from app.components import load_encoder

    started = time.perf_counter()
    run = Run(settings, options, progress, say)
    catalog = options.catalog_dir or last_catalog(settings.runs_dir)
    queries = load_queries(find_queries_dir(options.queries_dir, catalog), options.seed)
    encoder = load_encoder(settings)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(options.machine, options.device, encoder.provider, encoder.threads),
        "options": {
            **asdict(options),
            "sizes": [label for label, _ in options.sizes],
            "clients": list(options.clients),
            "requests_per_cell": {str(c): options.requests(c) for c in options.clients},
            "queries_dir": str(queries.source),
            "catalog_dir": str(catalog) if catalog else None,
        },
        "model": {
            "id": encoder.model_id,
            "dim": encoder.dim,
            "instance_dim": encoder.instance_dim,
            "bundle": str(encoder.bundle_dir),
        },
    }
    result["encoder"] = run.step(
        "encoder timings and roofline", lambda: encoder_timings(encoder, options.repeats)
    )
    naive = _naive_encoder(run, encoder, queries)
    result["naive_encoder"] = naive[1]
    if catalog is not None:
        result["ingest"] = run.step(
            "ingest images/s",
            lambda: bench_ingest(
                catalog,
                encoder,
                options.ingest_images,
                batch_size=settings.batch_size,
                pipeline_encoder=load_encoder(settings, parallel_towers=True),
            ),
        )
    else:
        result["ingest"] = {"skipped": "no catalog: give --catalog DIR"}
    say("reading the data dir's store")
    with closing(EdgeStore(settings.store_dir)) as source:
        real = read_points(source)
    synth = SyntheticCatalog(real, options.seed)
    qvecs = query_vectors(encoder, queries, options.recall_queries)
    filters = category_filters(real.payloads, options.recall_queries, options.seed)
    result["sizes"] = []
    for label, points in options.sizes:
        size = _bench_size(run, label, points, real, synth, queries, qvecs, filters, naive[0])
        result["sizes"].append(size)
    result["goals"] = goals(result)
    result["errors"] = run.errors
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _naive_encoder(
    run: Run, encoder: Encoder, queries: BenchQueries
) -> tuple[TorchEncoder | None, dict[str, Any]]:
    """The torch encoder with its timings and its agreement with ONNX, or why there is none."""

    def load() -> TorchEncoder | str:
        try:
            return TorchEncoder(encoder.bundle_dir, run.options.device, encoder.threads)
        except TorchUnavailable as exc:  # not an error: this bundle has no torch model
            return str(exc)

    loaded = run.step("naive encoder: loading the torch model", load)
    if not isinstance(loaded, TorchEncoder):
        return None, {"skipped": loaded or "the torch model failed to load (see errors)"}
    torch_encoder = loaded
    repeats = run.options.repeats
    photos = [load_image(r.image) for r in queries.requests["photo"][:4] if r.image is not None]
    texts = [r.text or "" for r in queries.requests["typed"][:4]]
    info = run.step(
        "naive encoder timings",
        lambda: {
            "weights": torch_encoder.weights,
            "threads": torch_encoder.threads,
            "image_ms_per_image": {
                str(b): round(image_latency(torch_encoder, b, repeats), 2) for b in (1, 32)
            },
            "text_ms_per_text": {
                str(b): round(text_latency(torch_encoder, b, repeats), 2) for b in (1, 32)
            },
            "parity_min_cosine": parity(encoder, torch_encoder, photos, texts),
        },
    )
    return torch_encoder, info or {}


def _serve(
    run: Run,
    sized: SizedStore,
    queries: BenchQueries,
    clients: tuple[int, ...],
    naive: NaiveStack | None = None,
) -> dict[str, Any]:
    """Start the server on ``sized``, load it cell by cell, compare it with ``naive`` (when
    given) request by request, stop it."""
    options = run.options
    bundle = run.settings.model_dir
    report: dict[str, Any] = {}
    with serving(sized.data_dir, bundle, options.device) as server:
        report["server"] = {
            "start_s": server.started_s,
            "idle": server.memory(),
            # Other work on the machine during these cells (their numbers are as quiet as this).
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
        report["http"] = {}
        for mode in MODES:
            run_cell(server.url, queries.take(mode, 3), 1)  # warm-up, not counted
            report["http"][mode] = {}
            for n in clients:
                requests = queries.take(mode, options.requests(n))
                run.progress(f"{sized.data_dir.name}: {mode} x{n}", 0, len(requests))
                cell = run_cell(server.url, requests, n)
                run.progress(f"{sized.data_dir.name}: {mode} x{n}", len(requests), len(requests))
                report["http"][mode][str(n)] = cell.summary()
                if cell.errors:
                    run.errors.append(
                        {"step": f"http {sized.data_dir.name} {mode} x{n}", "error": cell.errors[0]}
                    )
        if naive is not None:
            stack = naive
            report["naive"] = {**describe(stack), "modes": {}}
            for mode in MODES:
                requests = queries.take(mode, options.naive_requests)
                run.progress(f"naive vs server: {mode}", 0, len(requests))
                report["naive"]["modes"][mode] = compare(stack, server.url, requests)
                run.progress(f"naive vs server: {mode}", len(requests), len(requests))
        report["server"]["after"] = server.memory()
        report["server"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def _bench_size(
    run: Run,
    label: str,
    points: int | None,
    real: RealPoints,
    synth: SyntheticCatalog,
    queries: BenchQueries,
    qvecs: dict[str, np.ndarray],
    filters: list[SearchFilter],
    torch_encoder: TorchEncoder | None,
) -> dict[str, Any]:
    options = run.options
    cache = run.settings.data_dir / "bench"
    total = max(points or 0, len(real.ids))
    entry: dict[str, Any] = {"label": label, "points": total, "synthetic": total - len(real.ids)}

    def build(quantization: str | None) -> SizedStore:
        return ensure_sized_store(
            real,
            synth,
            cache,
            label,
            total,
            quantization=quantization,
            threshold_kb=run.settings.index_threshold_kb,
            hnsw=run.settings.hnsw,
            progress=run.progress,
        )

    def recall(store_of: SizedStore, rescore: bool | None) -> dict[str, Any]:
        with closing(store_of.open()) as store:
            return measure_recall(store, qvecs, filters, rescore)

    def curve(store_of: SizedStore) -> dict[str, Any]:
        return recall_curve(lambda ef: store_of.open(ef), qvecs, filters)

    int8_only = total > options.float_max_points
    if int8_only:
        entry["float"] = {
            "skipped": f"{total} points: above --float-max-points {options.float_max_points} "
            "(only the int8 store is built and measured at this size)"
        }
        entry["naive"] = {"skipped": "no float store at this size (--float-max-points)"}
    else:
        _bench_float(run, entry, label, total, build, recall, curve, queries, torch_encoder)
    sized8 = run.step(f"{label}: int8 store", lambda: build("int8"))
    if sized8 is not None:
        int8: dict[str, Any] = {"store": sized8.build}
        int8["recall_rescored"] = run.step(
            f"{label}: int8 recall (rescored)", lambda: recall(sized8, True)
        )
        int8["recall_codes_only"] = run.step(
            f"{label}: int8 recall (no rescoring)", lambda: recall(sized8, False)
        )
        if int8_only:  # the size's only store: measured as fully as float is elsewhere
            int8["recall_by_ef"] = run.step(
                f"{label}: int8 recall by search beam", lambda: curve(sized8)
            )
        if not options.quick:  # the same serving code as above: --quick spares the start
            clients = options.clients if int8_only else (1,)
            served8 = run.step(
                f"{label}: int8 server", lambda: _serve(run, sized8, queries, clients)
            )
            if served8 is not None:
                int8.update(served8)
        entry["int8"] = int8
    return entry


def _bench_float(
    run: Run,
    entry: dict[str, Any],
    label: str,
    total: int,
    build: Callable[[str | None], SizedStore],
    recall: Callable[[SizedStore, bool | None], dict[str, Any]],
    curve: Callable[[SizedStore], dict[str, Any]],
    queries: BenchQueries,
    torch_encoder: TorchEncoder | None,
) -> None:
    """The float store of one size into ``entry``: build, recall, the naive stack, the server."""
    options = run.options
    sized = run.step(f"{label}: store", lambda: build(None))
    if sized is None:
        return
    entry["store"] = sized.build
    entry["recall"] = run.step(f"{label}: ANN recall", lambda: recall(sized, None))
    entry["recall_by_ef"] = run.step(f"{label}: recall by search beam", lambda: curve(sized))
    naive: NaiveStack | None = None
    if torch_encoder is None:
        entry["naive"] = {"skipped": "no torch model for this bundle (see naive_encoder)"}
    elif total > options.naive_max_points:
        entry["naive"] = {
            "skipped": f"{total} points: above --naive-max-points {options.naive_max_points} "
            "(qdrant-client local mode holds every vector and payload as Python objects, and "
            "rank-bm25 scores every document per term in Python)"
        }
    else:
        encoder = torch_encoder

        def load_naive() -> NaiveStack:
            with closing(sized.open()) as store:  # read, closed again before the server opens it
                return NaiveStack(store, encoder, run.progress)

        naive = run.step(f"{label}: naive stack", load_naive)
    try:
        served = run.step(
            f"{label}: server", lambda: _serve(run, sized, queries, options.clients, naive)
        )
    finally:
        if naive is not None:
            naive.close()
            del naive
            gc.collect()  # it holds every point as Python objects: free them before going on
    if served is not None:
        entry.update(served)
