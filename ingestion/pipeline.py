"""Ingest a catalog: decode images in worker threads, embed in batches, upsert to the store."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from app.embedding.preprocess import load_image
from app.store import PointRecord, VectorStore, point_id
from ingestion.catalog import Catalog, Product, Reject, read_catalog
from ingestion.documents import image_payload, product_text

log = logging.getLogger(__name__)

# Progress callback: (images just processed, images in the whole run).
ProgressFn = Callable[[int, int], None]


class ImageEncoder(Protocol):
    """The part of the ONNX encoder that ingestion needs (lets tests pass a small fake)."""

    @property
    def dim(self) -> int: ...

    @property
    def model_id(self) -> str: ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


@dataclass
class IngestReport:
    products: int = 0
    images: int = 0
    rejects: list[Reject] = field(default_factory=list)
    seconds: float = 0.0
    index_built: bool = False

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return f"ingested {self.products} products, {self.images} images, {self.rejected} rejected"


@dataclass(frozen=True)
class _Job:
    product: Product
    image_file: str
    path: Path


def _jobs(catalog: Catalog) -> list[_Job]:
    return [_Job(p, f, catalog.image_path(f)) for p in catalog.products for f in p.image_files]


def _batches(jobs: Sequence[_Job], size: int) -> Iterator[Sequence[_Job]]:
    for start in range(0, len(jobs), size):
        yield jobs[start : start + size]


def _decode(job: _Job) -> Image.Image | str:
    """The decoded image, or the reason it cannot be used."""
    if not job.path.is_file():
        return "image file not found"
    try:
        return load_image(job.path)
    except Exception as exc:  # any decoder failure is a per-image reject, never a crashed run
        return f"unreadable image: {exc}"


def _mean_token_count(products: Sequence[Product]) -> float:
    if not products:
        return 16.0
    return float(np.mean([len(product_text(p).split()) for p in products]))


def ingest_catalog(
    catalog_dir: Path,
    store: VectorStore,
    encoder: ImageEncoder,
    batch_size: int = 32,
    workers: int = 2,
    progress: ProgressFn | None = None,
    build_index: bool = True,
    replace_model: bool = False,
) -> IngestReport:
    """Embed every readable image of the catalog and upsert it, one point per image.

    ``replace_model``: when the store holds vectors of another model, drop them first (they
    cannot be compared with the new model's); otherwise that is an error.
    """
    started = time.perf_counter()
    catalog = read_catalog(catalog_dir)
    report = IngestReport(rejects=list(catalog.rejects))
    held = store.info().model_id
    if replace_model and held is not None and held != encoder.model_id:
        log.warning("dropping %d points of model %s", store.count(), held)
        store.drop()
    store.ensure_collection(
        encoder.dim, encoder.model_id, bm25_avg_len=_mean_token_count(catalog.products)
    )
    jobs = _jobs(catalog)
    texts = {p.product_id: product_text(p) for p in catalog.products}
    ingested_products: set[str] = set()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        # Decoding batch i+1 runs in the pool while batch i is being embedded.
        batches = list(_batches(jobs, batch_size))
        pending = pool.map(_decode, batches[0]) if batches else iter(())
        for i, batch in enumerate(batches):
            decoded = list(pending)
            if i + 1 < len(batches):
                pending = pool.map(_decode, batches[i + 1])
            good: list[tuple[_Job, Image.Image]] = []
            for job, result in zip(batch, decoded, strict=True):
                if isinstance(result, str):
                    report.rejects.append(Reject(str(job.path), job.product.product_id, result))
                else:
                    good.append((job, result))
            if good:
                vectors = encoder.encode_images([img for _, img in good])
                store.upsert(
                    [
                        PointRecord(
                            id=point_id(job.product.product_id, job.image_file),
                            image_vector=vec,
                            text=texts[job.product.product_id],
                            payload=image_payload(job.product, job.image_file, job.path),
                        )
                        for (job, _), vec in zip(good, vectors, strict=True)
                    ]
                )
                report.images += len(good)
                ingested_products.update(job.product.product_id for job, _ in good)
            if progress is not None:
                progress(len(batch), len(jobs))

    # A product none of whose images could be read is already listed once per image reject.
    report.products = len(ingested_products)
    if build_index and report.images:
        report.index_built = store.build_index()
    report.seconds = time.perf_counter() - started
    log.info("%s in %.1fs (%.1f images/s)", report.summary(), report.seconds, report.images_per_s)
    return report
