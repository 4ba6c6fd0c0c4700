"""A store of N points for the benchmark: the real catalog's points plus synthetic ones.

Built under ``<data-dir>/bench/<label>[-int8]/`` as a data dir of its own (``qdrant/`` inside),
so the benchmark serves it with ``snapshop serve --data-dir`` and never touches the data dir's
own store. A store is reused by the next run when everything it was built from is the same
(the real points, the size, the seed, the generator, the store options): ``build.json``, written
last, records those inputs and what the build measured.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.benchmarks import Progress
from app.benchmarks.synthetic import SYNTH_VERSION, RealPoints, SyntheticCatalog
from app.files import write_text_atomic
from app.observability.heartbeat import with_heartbeat
from app.store import (
    IMAGE_VECTOR,
    INSTANCE_VECTOR,
    TEXT_VECTOR,
    EdgeStore,
    HnswOptions,
    PointRecord,
)

BUILD_FILE = "build.json"
STORE_DIR = "qdrant"  # as in a data dir (``Settings.store_dir``), so the server finds it
WRITE_BATCH = 2_000


@dataclass(frozen=True)
class SizedStore:
    label: str
    data_dir: Path  # a data dir: ``snapshop serve --data-dir`` serves the store inside it
    points: int
    synthetic: int
    quantization: str | None
    build: dict[str, Any]  # seconds, index state, disk size...; ``reused`` when cached
    hnsw: HnswOptions  # the graph it was built with, and the beam its searches use

    @property
    def store_dir(self) -> Path:
        return self.data_dir / STORE_DIR

    def open(self, ef: int | None = None) -> EdgeStore:
        """The store, searching with the search beam ``ef`` (default: the configured one)."""
        hnsw = self.hnsw if ef is None else self.hnsw.fixed_beam(ef)
        return EdgeStore(self.store_dir, hnsw=hnsw)


def disk_mb(path: Path) -> float:
    """Bytes the files under ``path`` take on disk (allocated blocks, as ``du``), in MB."""
    total = sum(p.lstat().st_blocks * 512 for p in path.rglob("*") if p.is_file())
    return round(total / 1e6, 1)


def _key(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _reused(folder: Path, key: str) -> dict[str, Any] | None:
    try:
        build: dict[str, Any] = json.loads((folder / BUILD_FILE).read_text())
    except (OSError, ValueError):
        return None
    if build.get("key") != key or not (folder / STORE_DIR / "snapshop.json").is_file():
        return None
    return build


def ensure_sized_store(
    real: RealPoints,
    synth: SyntheticCatalog,
    cache: Path,
    label: str,
    total: int,
    *,
    quantization: str | None = None,
    threshold_kb: int,
    hnsw: HnswOptions,
    progress: Progress,
) -> SizedStore:
    """The store of ``total`` points (at least the real ones) under ``cache``, built or reused."""
    total = max(total, len(real.ids))
    synthetic = total - len(real.ids)
    folder = cache / (label if quantization is None else f"{label}-{quantization}")
    inputs = {
        "source": real.digest(),
        "points": total,
        "synthetic": {"version": SYNTH_VERSION, "seed": synth.seed},
        "quantization": quantization,
        "indexing_threshold_kb": threshold_kb,
        "hnsw": {
            "m": hnsw.m,
            "ef_construct": hnsw.ef_construct,
            "full_scan_kb": hnsw.full_scan_kb,
            # Only when on, so that stores cached before blocks existed keep their key.
            **({"graph_blocks": hnsw.graph_blocks} if hnsw.graph_blocks else {}),
        },
    }
    key = _key(inputs)
    found = _reused(folder, key)
    if found is not None:
        return SizedStore(
            label, folder, total, synthetic, quantization, {**found["build"], "reused": True}, hnsw
        )
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    step = f"store {folder.name}"
    started = time.perf_counter()
    store = EdgeStore(
        folder / STORE_DIR, indexing_threshold_kb=threshold_kb, quantization=quantization, hnsw=hnsw
    )
    try:
        texts = real.texts
        store.ensure_collection(real.dim, real.model_id, texts, real.instance_dim)
        instance = real.vectors.get(INSTANCE_VECTOR)
        for start in range(0, len(real.ids), WRITE_BATCH):
            end = min(start + WRITE_BATCH, len(real.ids))
            store.upsert(
                [
                    PointRecord(
                        id=real.ids[i],
                        image_vector=real.vectors[IMAGE_VECTOR][i],
                        text_vector=real.vectors[TEXT_VECTOR][i],
                        text=texts[i],
                        payload=real.payloads[i],
                        instance_vector=instance[i] if instance is not None else None,
                    )
                    for i in range(start, end)
                ]
            )
            progress(step, end, total)
        written = len(real.ids)
        for records in synth.batches(synthetic, WRITE_BATCH):
            store.upsert(records)
            written += len(records)
            progress(step, written, total)
        load_s = time.perf_counter() - started
        t = time.perf_counter()
        progress(f"{step}: index", 0, 1)
        # The engine says nothing while it builds (most of an hour at 1M on 2 cores), and
        # holds the GIL: the progress bar is frozen meanwhile, so a child process talks.
        with_heartbeat(store.build_index, f"{step}: building the HNSW index")
        index_s = time.perf_counter() - t
        progress(f"{step}: index", 1, 1)
        status = store.index_status()
        count = store.count()
    finally:
        store.close()
    if count != total:
        raise RuntimeError(f"{folder}: wrote {total} points but the store holds {count}")
    build = {
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_s": round(load_s, 1),
        "points_per_s": round(total / load_s, 1) if load_s > 0 else None,
        "index_build_s": round(index_s, 1),
        "index_state": status.state,
        "index": status.describe(),
        "disk_mb": disk_mb(folder / STORE_DIR),
    }
    if synthetic:
        build["synthetic"] = synth.describe() | {"nearest_real_cosine": synth.nearest_real_cosine()}
    write_text_atomic(
        folder / BUILD_FILE, json.dumps({"key": key, "inputs": inputs, "build": build})
    )
    return SizedStore(
        label, folder, total, synthetic, quantization, {**build, "reused": False}, hnsw
    )
