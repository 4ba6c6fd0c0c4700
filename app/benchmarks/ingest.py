"""Ingest throughput: the pipeline against a naive one-image-at-a-time loop, same run, same data.

The naive loop is what a first version would do: for each image, decode it, embed it alone,
embed its product text, and write one point. It produces the same points as the pipeline (the
benchmark checks the counts), so the ratio measures the pipeline's batching and overlap only.
Each side writes into its own fresh store of the configured backend (``open_scratch``), dropped
afterwards; by default, embedded stores under a temporary directory.
"""

from __future__ import annotations

import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.embedding.preprocess import load_image
from app.embedding.runtime import Encoder
from app.store import VectorStore
from ingestion.catalog import read_catalog
from ingestion.documents import point_record, product_text
from ingestion.pipeline import ingest_catalog, product_hash


def _subset(catalog_dir: Path, limit: int | None, into: Path) -> Path:
    """The catalog itself, or a folder with its first ``limit`` rows (images symlinked)."""
    if limit is None:
        return catalog_dir
    products = catalog_dir / "products.csv"
    lines = products.read_text(encoding="utf-8").splitlines(keepends=True)
    into.mkdir(parents=True)
    (into / "products.csv").write_text("".join(lines[: limit + 1]), encoding="utf-8")
    (into / "images").mkdir()
    for product in read_catalog(into).products:
        for name in product.image_files:
            src = catalog_dir / "images" / name
            if src.exists():
                (into / "images" / name).symlink_to(src.resolve())
    return into


# (temporary folder, name) -> a fresh store; ``app.components.scratch_stores`` makes them.
ScratchStores = Callable[[Path, str], VectorStore]


def _edge_scratch(folder: Path, name: str) -> VectorStore:
    from app.store.edge import EdgeStore

    return EdgeStore(folder / name)


def naive_ingest(catalog_dir: Path, store: VectorStore, encoder: Encoder) -> int:
    """One image at a time: decode, embed, embed the text, write. Returns points written."""
    catalog = read_catalog(catalog_dir)
    texts = [product_text(p) for p in catalog.products]
    store.ensure_collection(encoder.dim, encoder.model_id, texts, encoder.instance_dim)
    written = 0
    for product, text in zip(catalog.products, texts, strict=True):
        digest = product_hash(product, catalog)
        for name in product.image_files:
            path = catalog.image_path(name)
            try:
                image = load_image(path)
            except Exception:  # same outcome as the pipeline: a reject, not a crash
                continue
            images, instances = encoder.encode_images_with_instance([image])
            (text_vec,) = encoder.encode_texts([text])
            inst = instances[0] if encoder.instance_dim else None
            store.upsert([point_record(product, name, path, digest, images[0], text_vec, inst)])
            written += 1
    return written


def _peak_rss_mb() -> float:
    # ru_maxrss is KB on Linux: the process's high-water mark so far.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def bench_ingest(
    catalog_dir: Path,
    encoder: Encoder,
    limit: int | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    open_scratch: ScratchStores = _edge_scratch,
    pipeline_encoder: Encoder | None = None,
) -> dict[str, Any]:
    """Both ingests over the same images; images/s of each and their ratio.

    ``pipeline_encoder``: the pipeline's, as ``snapshop ingest`` loads it (towers in parallel);
    default ``encoder``. The naive loop always runs ``encoder``, as a query would.
    """
    pipe = pipeline_encoder or encoder
    with tempfile.TemporaryDirectory(prefix="snapshop-bench-") as tmp:
        root = Path(tmp)
        catalog = _subset(catalog_dir, limit, root / "catalog")
        # Warm-up: the first ONNX runs allocate; neither side should pay for that.
        subset = read_catalog(catalog)
        warm = subset.products[:2]
        warm_images = [load_image(subset.image_path(p.image_files[0])) for p in warm]
        warm_texts = [product_text(p) for p in warm]
        for each in {id(encoder): encoder, id(pipe): pipe}.values():
            each.encode_images(warm_images)
            each.encode_texts(warm_texts)

        naive_store = open_scratch(root, "bench-naive")
        try:
            t0 = time.perf_counter()
            naive_points = naive_ingest(catalog, naive_store, encoder)
            naive_s = time.perf_counter() - t0
            naive_store.drop()
        finally:
            naive_store.close()
        rss_after_naive = _peak_rss_mb()

        store = open_scratch(root, "bench-pipeline")
        try:
            t0 = time.perf_counter()
            report = ingest_catalog(
                catalog, store, pipe, batch_size=batch_size, workers=workers, build_index=False
            )
            ours_s = time.perf_counter() - t0
            ours_points = store.count()
            store.drop()
        finally:
            store.close()

    if naive_points != ours_points:
        raise RuntimeError(
            f"the two ingests disagree: naive wrote {naive_points} points, pipeline {ours_points}"
        )
    naive_rate = naive_points / naive_s if naive_s > 0 else 0.0
    ours_rate = ours_points / ours_s if ours_s > 0 else 0.0
    return {
        "benchmark": "ingest",
        "catalog": str(catalog_dir),
        "images": ours_points,
        "rejected": report.rejected,
        "baseline": {
            "name": "naive one-image loop",
            "seconds": round(naive_s, 3),
            "images_per_s": round(naive_rate, 2),
        },
        "snapshop": {
            "name": "pipeline",
            "seconds": round(ours_s, 3),
            "images_per_s": round(ours_rate, 2),
            "batch_size": batch_size,
            "workers": workers or os.cpu_count(),
            "towers_in_parallel": pipe.parallel_towers,
            "intra_op_threads_per_tower": pipe.session_threads,
        },
        "speedup": round(ours_rate / naive_rate, 2) if naive_rate else None,
        "peak_rss_mb": {"after_baseline": rss_after_naive, "after_both": _peak_rss_mb()},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "provider": encoder.provider,
            "intra_op_threads": encoder.threads,
            "model": encoder.model_id,
        },
    }
