"""Ingest a catalog: decode images in worker threads, embed in batches, upsert to the store.

Worker threads decode and preprocess the next batches while the model runs the current one
(ONNX Runtime and PIL both release the GIL). At most ``PREFETCH_BATCHES`` batches are in flight,
so memory stays bounded whatever the catalog size. With an encoder whose towers run in parallel
(``snapshop ingest``), a batch's texts are embedded in a thread of their own while its images
are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import numpy as np
from PIL import Image

from app.embedding.preprocess import draft_size, load_image
from app.observability.heartbeat import with_heartbeat
from app.store import ModelMismatchError, PointRecord, VectorStore, point_id
from app.store.fields import CONTENT_HASH, PRODUCT_ID, SYNC_FIELDS
from ingestion.catalog import Catalog, CatalogProduct, Reject, read_catalog
from ingestion.documents import point_record, product_text

log = logging.getLogger(__name__)

# Progress callback: (images just processed, images in the whole run).
ProgressFn = Callable[[int, int], None]
PREFETCH_BATCHES = 2
INDEX_HEARTBEAT_S = 15.0
# Smaller than this on either side is a placeholder or a tracking pixel, not a product photo.
MIN_IMAGE_SIDE = 8


class IngestEncoder(Protocol):
    """The part of the ONNX encoder that ingestion needs."""

    @property
    def dim(self) -> int: ...

    @property
    def model_id(self) -> str: ...

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    @property
    def instance_dim(self) -> int: ...

    def encode_pixels_with_instance(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    @property
    def parallel_towers(self) -> bool:
        """Whether the text tower should run beside the image tower (each session then has
        half the thread budget); otherwise one runs after the other."""
        ...


@dataclass
class IngestReport:
    """What a run did. ``products``/``images``: what of this catalog is searchable afterwards."""

    products: int = 0
    images: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    embedded: int = 0  # images run through the model this time
    written: int = 0  # points upserted or deleted this time
    rejects: list[Reject] = field(default_factory=list)
    seconds: float = 0.0
    index_built: bool = False

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    @property
    def images_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return f"ingested {self.products} products, {self.images} images, {self.rejected} rejected"

    def changes(self) -> str:
        return (
            f"added {self.added}, updated {self.updated}, deleted {self.deleted}, "
            f"unchanged {self.unchanged} products; embedded {self.embedded} images, "
            f"wrote {self.written} points"
        )


@dataclass(frozen=True)
class _Job:
    product: CatalogProduct
    image_file: str
    path: Path


def product_hash(product: CatalogProduct, catalog: Catalog) -> str:
    """Content hash of everything a product's points are made from: metadata and image bytes."""
    meta = [
        product.product_id,
        product.title,
        product.category,
        product.description,
        product.price,
        sorted(product.attributes.items()),
        list(product.image_files),
    ]
    h = hashlib.sha256(json.dumps(meta, ensure_ascii=False).encode())
    for name in product.image_files:
        path = catalog.image_path(name)
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"missing")
    return h.hexdigest()


def _batches(jobs: Sequence[_Job], size: int) -> Iterator[Sequence[_Job]]:
    for start in range(0, len(jobs), size):
        yield jobs[start : start + size]


def check_image(path: Path, draft: tuple[int, int] | None = None) -> Image.Image | str:
    """The decoded image of a catalog file (JPEGs at ``draft`` size, as queries are), or the
    reason it cannot be used."""
    if not path.exists():
        return "image file not found"
    if not path.is_file():
        return "not a regular file (a directory?)"
    try:
        image = load_image(path, draft=draft)
    except Exception as exc:  # any decoder failure is a per-image reject, never a crashed run
        return f"unreadable image: {exc}"
    if min(image.size) < MIN_IMAGE_SIDE:
        return (
            f"image is {image.width}x{image.height} px; at least {MIN_IMAGE_SIDE} px a side "
            "is needed"
        )
    return image


def ingest_catalog(
    catalog_dir: Path,
    store: VectorStore,
    encoder: IngestEncoder,
    batch_size: int = 32,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    build_index: bool = True,
    replace_model: bool = False,
    prune: bool = False,
    bundle: Path | None = None,
    indexing: IO[str] | None = None,
) -> IngestReport:
    """Bring the store in line with the catalog, one point per image, embedding only what changed.

    Each point carries its product's content hash; a point whose hash matches is left alone, so
    the same catalog twice embeds and writes nothing. Points of images no longer listed for a
    product are deleted; with ``prune``, so are products no longer in products.csv at all.
    Everything is decided per point from what the store holds, so a run that was interrupted
    at any moment is completed by the next one.

    ``replace_model``: when the store holds vectors of another model (or an older store
    format), drop them first (they cannot be compared with the new model's); otherwise that is
    an error. Only that (``ModelMismatchError``) drops anything: any other store error, a
    server timeout say, ends the run with the catalog as it was.

    ``bundle``: the encoder's model bundle, recorded with a collection this run creates (a
    server that swaps to it loads that model).

    ``indexing``: a stream that gets a line with the seconds so far every ``INDEX_HEARTBEAT_S``
    while the index builds.
    """
    started = time.perf_counter()
    catalog = read_catalog(catalog_dir)
    report = IngestReport(rejects=list(catalog.rejects))
    texts = {p.product_id: product_text(p) for p in catalog.products}
    recorded = str(bundle.resolve()) if bundle is not None else None
    try:
        store.ensure_collection(
            encoder.dim, encoder.model_id, list(texts.values()), encoder.instance_dim, recorded
        )
    except ModelMismatchError as exc:
        if not replace_model:
            raise
        log.warning("dropping %d points: %s", store.count(), exc)
        store.drop()
        store.ensure_collection(
            encoder.dim, encoder.model_id, list(texts.values()), encoder.instance_dim, recorded
        )
    existing = {
        hit.id: (str(hit.payload.get(PRODUCT_ID, "")), hit.payload.get(CONTENT_HASH))
        for hit in store.scan(SYNC_FIELDS)
    }
    hashes = {p.product_id: product_hash(p, catalog) for p in catalog.products}
    expected: dict[str, str] = {}  # point id -> product id, for every image the catalog lists
    jobs: list[_Job] = []
    for product in catalog.products:
        for name in product.image_files:
            pid = point_id(product.product_id, name)
            expected[pid] = product.product_id
            if existing.get(pid, ("", None))[1] != hashes[product.product_id]:
                jobs.append(_Job(product, name, catalog.image_path(name)))
    changed: set[str] = set()
    present = {pid for pid in expected if pid in existing}

    listed = {p.product_id for p in catalog.products} | {r.product_id for r in catalog.rejects}
    # Stale: images a catalog product no longer lists, and (with prune) products gone from
    # products.csv. A row that is merely rejected this time keeps its points.
    stale = [
        pid
        for pid, (product_id, _) in existing.items()
        if pid not in expected and (product_id in hashes or (prune and product_id not in listed))
    ]
    stale_of: dict[str, list[str]] = {}
    for pid in stale:
        stale_of.setdefault(existing[pid][0], []).append(pid)
    stale_products = set(stale_of)

    # A product's change is written in one ``store.write`` (its new points and its dropped
    # images together) once all its images are through the model, so a search running beside
    # this sync sees the product as it was or as it is, never half of each.
    remaining = Counter(job.product.product_id for job in jobs)
    pending: dict[str, list[PointRecord]] = {}

    text_vectors: dict[str, np.ndarray] = {}

    manifest = getattr(encoder, "manifest", None)
    draft = draft_size(getattr(manifest, "image_size", None))

    def prepare(job: _Job) -> np.ndarray | str:
        image = check_image(job.path, draft)
        return image if isinstance(image, str) else encoder.preprocess([image])[0]

    n_workers = workers or max(1, os.cpu_count() or 1)
    with ExitStack() as stack:
        pool = stack.enter_context(
            ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="ingest-decode")
        )
        text_pool = (
            stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="ingest-text"))
            if encoder.parallel_towers
            else None
        )
        batches = list(_batches(jobs, batch_size))
        in_flight: deque[list[Future[np.ndarray | str]]] = deque()
        for i, batch in enumerate(batches):
            while len(in_flight) < PREFETCH_BATCHES and i + len(in_flight) < len(batches):
                in_flight.append([pool.submit(prepare, j) for j in batches[i + len(in_flight)]])
            prepared = [f.result() for f in in_flight.popleft()]
            good: list[tuple[_Job, np.ndarray]] = []
            for job, result in zip(batch, prepared, strict=True):
                if isinstance(result, str):
                    # An older point of this image, if any, stays: never lose a product.
                    report.rejects.append(Reject(str(job.path), job.product.product_id, result))
                else:
                    good.append((job, result))
            if good:
                new_texts = sorted({j.product.product_id for j, _ in good} - text_vectors.keys())
                # Products often share their text (a shirt in three colours): each text is
                # embedded once (6 % of the dev catalog's texts within a batch).
                unique = list(dict.fromkeys(texts[pid] for pid in new_texts))
                # With parallel towers the texts are embedded while the images are.
                beside = (
                    text_pool.submit(encoder.encode_texts, unique) if text_pool and unique else None
                )
                # One run of the image graph gives both image vectors (instance: (N, 0) when
                # the model has none, and the point then carries none).
                vectors, instances = encoder.encode_pixels_with_instance(
                    np.stack([px for _, px in good])
                )
                if unique:
                    got = beside.result() if beside is not None else encoder.encode_texts(unique)
                    by_text = dict(zip(unique, got, strict=True))
                    text_vectors.update((pid, by_text[texts[pid]]) for pid in new_texts)
                for (job, _), vec, inst in zip(good, vectors, instances, strict=True):
                    pending.setdefault(job.product.product_id, []).append(
                        point_record(
                            job.product,
                            job.image_file,
                            job.path,
                            hashes[job.product.product_id],
                            vec,
                            text_vectors[job.product.product_id],
                            inst if encoder.instance_dim else None,
                        )
                    )
                changed.update(job.product.product_id for job, _ in good)
                # A product's images are consecutive in ``jobs``: only the last one can recur.
                last = good[-1][0].product.product_id
                text_vectors = {last: text_vectors[last]}
            remaining.subtract(job.product.product_id for job in batch)
            whole = {
                job.product.product_id for job in batch if remaining[job.product.product_id] == 0
            }
            points = [p for product_id in sorted(whole) for p in pending.pop(product_id, [])]
            dropped = [pid for product_id in sorted(whole) for pid in stale_of.pop(product_id, [])]
            if points or dropped:
                store.write(points, dropped)
                report.embedded += len(points)
                report.written += len(points) + len(dropped)
                present.update(p.id for p in points)
            if progress is not None:
                progress(len(batch), len(jobs))

    # What is left: dropped images of products with nothing to re-embed (an earlier run stopped
    # between writing and deleting) and pruned products, each product's points in one write.
    rest = [pid for ids in stale_of.values() for pid in ids]
    if rest:
        store.write((), rest)
        report.written += len(rest)
    changed |= stale_products & hashes.keys()
    report.deleted = len(stale_products - hashes.keys())

    known_before = {product_id for product_id, _ in existing.values()}
    searchable = {expected[pid] for pid in present}
    for product in catalog.products:
        pid = product.product_id
        if pid not in searchable:
            continue  # every image rejected and nothing older to keep: listed in rejects
        if pid not in known_before:
            report.added += 1
        elif pid in changed:
            report.updated += 1
        else:
            report.unchanged += 1
    report.products = len(searchable)
    report.images = len(present)
    if build_index and report.written:
        if indexing is None:
            report.index_built = store.build_index()
        else:  # minutes at 100k+ points, with nothing from the engine until it is done
            report.index_built = with_heartbeat(
                store.build_index, "building the HNSW index", INDEX_HEARTBEAT_S, indexing
            )
    report.seconds = time.perf_counter() - started
    log.info("%s; %s in %.1fs", report.summary(), report.changes(), report.seconds)
    return report
