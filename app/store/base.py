"""The store interface every backend implements: the embedded engine (``EdgeStore``, qdrant-edge)
and a Qdrant server or cluster (``QdrantServerStore``, qdrant-client).

Ingestion writes through it and the search legs read through it; neither knows which engine is
behind it, so the same congruence tests run against every backend (tests/store).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from app.store.errors import ModelMismatchError, StoreError, StoreUnavailableError

# What ``app.store`` offers besides the backends (it re-exports exactly these).
__all__ = [
    "BM25_VECTOR",
    "DEFAULT_INDEXING_THRESHOLD_KB",
    "DENSE_VECTORS",
    "IMAGE_VECTOR",
    "INSTANCE_VECTOR",
    "STORE_FORMAT",
    "TEXT_VECTOR",
    "DenseQuery",
    "Hit",
    "HnswOptions",
    "IndexStatus",
    "KeywordQuery",
    "ModelMismatchError",
    "PayloadSelection",
    "PointRecord",
    "SearchFilter",
    "StoreError",
    "StoreInfo",
    "StoreQuery",
    "StoreUnavailableError",
    "VectorStore",
    "attribute_term",
    "category_ancestors",
    "check_model",
    "normalise_category",
    "point_id",
]

IMAGE_VECTOR = "image"  # the catalog photo, image tower
TEXT_VECTOR = "text"  # the product's text (title, category, attributes...), text tower
BM25_VECTOR = "bm25"
DENSE_VECTORS = (IMAGE_VECTOR, TEXT_VECTOR)
# The catalog photo's identity embedding (the image graph's second output): only in collections
# whose model has one, so it is not one of DENSE_VECTORS, which every collection holds.
INSTANCE_VECTOR = "instance"
# The collection layout (vectors and payload) every backend writes; 2: the ``text`` vector was
# added. A store of another format must be re-ingested (``--replace-model``).
STORE_FORMAT = 2

# Segments smaller than this (KB of vectors) are searched exactly instead of through HNSW.
# Qdrant's default; stated here so that the status can say which regime a collection is in.
DEFAULT_INDEXING_THRESHOLD_KB = 10_000


@dataclass(frozen=True)
class HnswOptions:
    """The HNSW graph a new collection is built with, and how wide every dense search looks.

    ``m`` (links per node) and ``ef_construct`` are fixed when a collection is created (its meta
    records them); ``ef``, the search beam, applies to every search and may change any time
    (the engine searches at least as wide as the hits asked for; ``beam(points)`` widens it
    for large collections, ``acorn(points)`` decides filtered walks). Chosen from recall against
    exact search at 100k products (``snapshop bench``, bench/README.md): with Qdrant's defaults
    (16, 100, beam 100) the legs found 0.62-0.99 of the exact top 10. m 32 and ef_construct 256
    raised every leg; a beam of 512 brought each leg, as served, to >= 0.99 (256: 0.958).
    Once filtered searches scanned up to 100,000 KB (below), the unfiltered legs alone set the
    beam: at 100k the lowest leg, as served, is 0.996 at 384 as at 512 (256: 0.994), and a
    narrower beam visits fewer points (the per-leg time gain was within the noise).

    ``full_scan_kb``: a filter matching at most this many KB of the searched vectors is
    answered by scanning its matches exactly, not by walking the graph (``scans``; the stores
    decide it per search, the engine at creation). A filtered walk only steps on matching
    points, so a query whose true neighbours within the filter are linked to the rest only
    through other categories (a shoe query filtered to apparel: infant booties) is not found
    at any beam. At 100k, 30,000 KB (20k points of 384 floats) left the lowest filtered leg at
    0.970 (ACORN for every filter: 0.994, the instance leg 6 -> 18 ms); 100,000 KB (67k text
    or photo vectors, 40k identity vectors) took every filtered leg to 1.0, 1-5 ms more on
    most legs' median, and lower tails (identity leg p90 26 -> 13 ms): scanning 20-50k vectors
    costs 6-15 ms, an ACORN walk 6-19.
    """

    m: int = 32
    ef_construct: int = 256
    ef: int = 384
    full_scan_kb: int = 100_000
    # From ``large_from`` points on, the graph is deeper and a walk more often settles in the
    # wrong region: at 1M int8 (bench/README.md) beam 1,024 raised the worst leg, as served,
    # from 0.946 to 0.968 unfiltered and from 0.906 to 0.968 filtered. It costs: a search
    # took 1.5-1.8x as long (photo leg 1.4 -> 2.4 ms), and one-client HTTP p50 rose from
    # 31.5 / 48.7 / 75.1 to 41.3 / 64.5 / 92.4 ms (typed / photo / photo + text). At 100k
    # the same beam bought 0.02 on one filtered leg, so smaller stores keep ``ef``.
    ef_large: int = 1_024
    large_from: int = 250_000
    # Filtered walks only step on matching points, so a cluster linked to the rest only
    # through non-matching ones is out of reach at any beam. ACORN (Patel et al., SIGMOD 2024)
    # also looks through non-matching neighbours to theirs, for filters matching at most this
    # share of the points (0: never). Below ``large_from`` only: at 100k it took the
    # photo->text leg filtered from 0.954 to 0.976 (0.992 with int8 codes), its search from
    # 2.4 to 2.7 ms; at 1M it made filtered searches 2-5x slower (instance leg 8.8 -> 46 ms)
    # for <= 0.06.
    acorn_max_selectivity: float = 0.4
    # Hashed blocks per category level that the engine links within (``graph_blocks``): a
    # filtered walk then reaches a category's points whose neighbours lie in other categories.
    # Fixed at creation (the meta records it; stores made before it have none). 16 keeps each
    # block under the engine's cap while a point keeps fewer than 64 links on average.
    graph_blocks: int = 16

    def __post_init__(self) -> None:
        if (
            self.m < 4
            or self.ef_construct < 4
            or self.ef < 1
            or self.full_scan_kb < 1
            or self.ef_large < 1
            or self.large_from < 0
            or not 0.0 <= self.acorn_max_selectivity <= 1.0
            or self.graph_blocks < 0
        ):
            raise ValueError(f"HNSW options out of range: {self}")

    def beam(self, points: int) -> int:
        """The search beam for a collection of ``points`` points."""
        return self.ef_large if points >= self.large_from else self.ef

    def acorn(self, points: int) -> float | None:
        """ACORN's filter-share ceiling for a collection of ``points`` points; None: off."""
        if points >= self.large_from or self.acorn_max_selectivity <= 0:
            return None
        return self.acorn_max_selectivity

    def scans(self, matches: int, dim: int, created_kb: int = 0) -> bool:
        """Whether a filtered search matching ``matches`` points of ``dim`` floats scans them
        exactly instead of walking the graph: their vectors take at most ``full_scan_kb``, or
        ``created_kb``, the threshold the collection was created with, if larger.

        The stores make this choice per search, so a changed setting applies to existing
        collections and both backends alike. The engine's own threshold is lower where the
        collection has graph blocks (``app.store.graph_blocks``), so it is not relied on."""
        return matches * dim * 4 <= max(self.full_scan_kb, created_kb) * 1024

    def fixed_beam(self, ef: int) -> HnswOptions:
        """These options searching with beam ``ef`` at every size (for measuring one beam)."""
        return replace(self, ef=ef, ef_large=ef)


# Fixed namespace so a (product, image) pair maps to the same point id on every machine and run.
POINT_NAMESPACE = uuid.UUID("6f1c2f4e-5b7a-4d43-9c1e-2a7d51c0b9e3")


def point_id(product_id: str, image_file: str) -> str:
    """Point id = UUID5 of (product_id, image file name): stable across re-ingests."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{product_id}\x1f{image_file}"))


def normalise_category(path: str) -> str:
    """Canonical form of a category path: trimmed segments, lower case, '/'-joined."""
    return "/".join(seg.strip().lower() for seg in path.split("/") if seg.strip())


def category_ancestors(path: str) -> list[str]:
    """Every ancestor of a category path, itself included, so a prefix filter is one keyword match.

    ``Apparel/Topwear/Shirts`` -> ``["apparel", "apparel/topwear", "apparel/topwear/shirts"]``.
    """
    segs = normalise_category(path).split("/") if normalise_category(path) else []
    return ["/".join(segs[: i + 1]) for i in range(len(segs))]


@dataclass(frozen=True)
class PointRecord:
    """One catalog image: its vectors, the text the BM25 leg indexes, and the product payload.

    ``text_vector`` embeds ``text`` (the same for every image of a product); keeping it in the
    same point means one write updates the photo, the keyword index and the text embedding.
    """

    id: str
    image_vector: np.ndarray
    text_vector: np.ndarray
    text: str
    payload: dict[str, Any]
    # Written only when the collection holds an instance vector (its model has one).
    instance_vector: np.ndarray | None = None


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


def vector_dim(meta: dict[str, Any], using: str) -> int:
    """Floats per vector of the named dense vector, from a collection's recorded meta."""
    return int(meta.get("instance_dim" if using == INSTANCE_VECTOR else "dim", 0))


def check_model(
    meta: dict[str, Any], dim: int, model_id: str, instance_dim: int, where: str, elsewhere: str
) -> None:
    """Raise ``ModelMismatchError`` unless the collection described by ``meta`` (format, model,
    sizes) is the one ``model_id`` writes; ``where`` names it, ``elsewhere`` is the setting that
    points at another one."""
    if meta.get("format") != STORE_FORMAT:
        raise ModelMismatchError(
            f"{where} was written by an older snapshop (store format {meta.get('format')}, this "
            f"one writes {STORE_FORMAT}); re-ingest with --replace-model, or use another "
            f"{elsewhere}"
        )
    # A store written before instance vectors existed reads as instance_dim 0.
    have = (meta["dim"], meta["model_id"], meta.get("instance_dim", 0))
    if have != (dim, model_id, instance_dim):
        raise ModelMismatchError(
            f"{where} holds vectors of model {meta['model_id']} (dim {meta['dim']}, instance "
            f"dim {have[2]}), not {model_id} (dim {dim}, instance dim {instance_dim}); "
            "build the new model's collection beside it with `snapshop ingest --new-collection` "
            f"and swap it in, or re-ingest in place with --replace-model, or use another "
            f"{elsewhere}"
        )


def attribute_term(name: str, value: str) -> str:
    """``name=value`` lowercased: one keyword per attribute, so equality filters are indexed
    and case-insensitive whatever attributes a catalog has."""
    return f"{name.strip().lower()}={value.strip().lower()}"


@dataclass(frozen=True)
class SearchFilter:
    """Restrictions every leg applies inside the engine (never by post-filtering)."""

    category: str | None = None
    price_min: float | None = None
    price_max: float | None = None
    attributes: tuple[tuple[str, str], ...] = ()  # (name, value) pairs, all must hold
    exclude_products: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.category
            or self.price_min is not None
            or self.price_max is not None
            or self.attributes
            or self.exclude_products
        )

    def with_category(self, category: str | None) -> SearchFilter:
        return replace(self, category=category)

    def excluding(self, product_ids: Sequence[str]) -> SearchFilter:
        return replace(self, exclude_products=tuple(self.exclude_products) + tuple(product_ids))


@dataclass(frozen=True)
class IndexStatus:
    """Whether the ANN index covers the collection; searches are exact wherever it does not."""

    state: str  # "ready" | "exact" (small: below the indexing threshold) | "pending" | "empty"
    indexed_vectors: int
    vectors: int
    threshold_vectors: int  # per dense vector: collections below this are searched exactly
    per_point: int = len(DENSE_VECTORS)  # dense vectors per point (3 with ``instance``)

    def describe(self) -> str:
        if self.state == "ready":
            return f"HNSW ready ({self.indexed_vectors} of {self.vectors} vectors indexed)"
        if self.state == "exact":
            return (
                f"exact search ({self.vectors // self.per_point} points, below the "
                f"indexing threshold of {self.threshold_vectors}; exact is fast at this size)"
            )
        if self.state == "pending":
            return (
                f"HNSW not built for {self.vectors - self.indexed_vectors} of {self.vectors} "
                "vectors; searches over them are exact (correct, slower) until "
                "`snapshop ingest --build-index` or the next ingest"
            )
        return "empty"

    @classmethod
    def of(
        cls, points: int, indexed: int, per_point: int, dim: int, threshold_kb: int
    ) -> IndexStatus:
        """The status of ``points`` with ``per_point`` dense vectors of ``dim`` each, of which
        the engine reports ``indexed`` in HNSW; ``threshold_kb``: the indexing threshold."""
        threshold = threshold_kb * 1024 // (4 * max(dim, 1))
        vectors = points * per_point
        indexed = min(indexed, vectors)
        if points == 0:
            state = "empty"
        elif indexed >= vectors:
            state = "ready"
        elif points < threshold:
            state = "exact"
        else:
            state = "pending"
        return cls(state, indexed, vectors, threshold, per_point)


@dataclass(frozen=True)
class StoreInfo:
    backend: str
    points: int
    indexed_vectors: int
    segments: int
    dim: int | None
    model_id: str | None
    extra: dict[str, Any] = field(default_factory=dict)


# Which payload fields a read returns: all (True), none (False) or the named ones.
PayloadSelection = bool | tuple[str, ...]


@dataclass(frozen=True)
class DenseQuery:
    """Nearest points to ``vector`` (cosine) by their ``using`` vector.

    ``min_score``: only hits at least this similar, applied inside the engine together with the
    filter, so a floor and a filter never interact. ``ef``: this search's HNSW beam instead of
    the store's (``HnswOptions.ef``), for searches that need less.
    """

    vector: np.ndarray
    limit: int
    flt: SearchFilter | None = None
    using: str = IMAGE_VECTOR
    min_score: float | None = None
    with_payload: PayloadSelection = True
    ef: int | None = None


@dataclass(frozen=True)
class KeywordQuery:
    """BM25 over the products' text; no hit when no term of ``text`` is indexed."""

    text: str
    limit: int
    flt: SearchFilter | None = None
    min_score: float | None = None
    with_payload: PayloadSelection = True


StoreQuery = DenseQuery | KeywordQuery


class OneQuerySearches:
    """``search_dense`` and ``search_bm25`` as one-query ``search_batch`` calls: what the
    backends share, so each implements only ``search_batch``."""

    def search_batch(self, queries: Sequence[StoreQuery]) -> list[list[Hit]]:
        raise NotImplementedError

    def search_dense(
        self,
        vector: np.ndarray,
        limit: int,
        flt: SearchFilter | None = None,
        using: str = IMAGE_VECTOR,
        min_score: float | None = None,
        with_payload: PayloadSelection = True,
    ) -> list[Hit]:
        return self.search_batch([DenseQuery(vector, limit, flt, using, min_score, with_payload)])[
            0
        ]

    def search_bm25(
        self,
        text: str,
        limit: int,
        flt: SearchFilter | None = None,
        min_score: float | None = None,
        with_payload: PayloadSelection = True,
    ) -> list[Hit]:
        return self.search_batch([KeywordQuery(text, limit, flt, min_score, with_payload)])[0]


class VectorStore(Protocol):
    """Typed interface of the product's store."""

    def ensure_collection(
        self,
        dim: int,
        model_id: str,
        corpus: Sequence[str] = (),
        instance_dim: int = 0,
        bundle: str | None = None,
    ) -> None:
        """Create the collection for vectors of ``dim`` made by ``model_id``, or check it matches.

        ``bundle``: the model bundle's folder, recorded at creation, so that a server switching
        to this collection (a model swap) loads the model that made its vectors.

        ``instance_dim`` > 0 adds the ``instance`` vector of that size (the model's identity
        embedding); the collection records it, and a model with another size is refused.

        ``corpus`` (the texts about to be indexed) sets BM25's average document length, fixed at
        creation: document weights depend on it, so changing it later would mix weights.
        Raises ``ModelMismatchError`` when the store holds another model's vectors or an older
        format (what ``--replace-model`` may drop), and a plain ``StoreError`` for anything else
        (a server that is down, a collection that snapshop did not make).
        """

    def upsert(self, points: Sequence[PointRecord]) -> None: ...

    def warm(self) -> None:
        """Load now what searches would otherwise load on first use (seconds for a large
        collection), so the first shopper does not wait for it; for a background thread."""

    def write(self, upsert: Sequence[PointRecord], delete: Sequence[str]) -> None:
        """Upsert ``upsert`` and delete ``delete`` as one change: a reader inside ``reading()``
        sees all of it or none of it (how a sync replaces a product's images in one step)."""

    def reading(self) -> AbstractContextManager[None]:
        """Hold while one answer's store calls run: no ``write`` lands in between, so every
        product it sees is whole. Re-entrant within a thread; store calls made from other
        threads on the reader's behalf (the legs' pool) need no hold of their own."""

    def probe(self) -> None:
        """Raise ``StoreError`` unless the store can serve now (files readable, collection
        present): what ``/readyz`` asks."""

    def dense_vectors(self) -> tuple[str, ...]:
        """The dense vectors the collection holds: ``DENSE_VECTORS``, + ``instance`` if any."""

    def delete(self, ids: Sequence[str]) -> None: ...

    def scans(self, flt: SearchFilter | None, using: str) -> bool:
        """Whether a search of the ``using`` vectors filtered by ``flt`` scans the filter's
        matches exactly instead of walking the graph (``HnswOptions.scans``)."""

    def search_dense(
        self,
        vector: np.ndarray,
        limit: int,
        flt: SearchFilter | None = None,
        using: str = IMAGE_VECTOR,
        min_score: float | None = None,
        with_payload: PayloadSelection = True,
    ) -> list[Hit]:
        """One ``DenseQuery``: its hits, best first."""

    def search_bm25(
        self,
        text: str,
        limit: int,
        flt: SearchFilter | None = None,
        min_score: float | None = None,
        with_payload: PayloadSelection = True,
    ) -> list[Hit]:
        """One ``KeywordQuery``: its hits, best first; empty when no term matches."""

    def search_batch(self, queries: Sequence[StoreQuery]) -> list[list[Hit]]:
        """Each query's hits, in order, in one call to the engine (one round trip to a server)."""

    def retrieve(self, ids: Sequence[str]) -> list[Hit]: ...

    def vectors(
        self, ids: Sequence[str], using: Sequence[str] | None = None
    ) -> dict[str, dict[str, np.ndarray]]:
        """The dense vectors of the given points: id -> vector name -> vector (``using``: only
        these names; None: every dense vector)."""

    def product_points(self, product_id: str) -> list[Hit]:
        """Every point (image) of one product, with payloads; empty when it is unknown."""

    def facet(self, key: str, ids: Sequence[str], limit: int = 1_000) -> list[tuple[str, int]]:
        """How many of the points ``ids`` hold each value of payload ``key``, most first.

        An array payload (``category``: the path and its ancestors) counts once per value.
        """

    def scan(self, fields: Sequence[str]) -> Iterator[Hit]:
        """Every point, with only the payload ``fields`` (score 0): what ingest compares against."""

    def count(self, flt: SearchFilter | None = None) -> int: ...

    def build_index(self) -> bool:
        """Build the ANN index after bulk loads; searches stay correct before it is ready."""

    def index_status(self) -> IndexStatus: ...

    def info(self) -> StoreInfo: ...

    def drop(self) -> None:
        """Delete every point and the collection itself (used when the model changes)."""

    def close(self) -> None: ...
