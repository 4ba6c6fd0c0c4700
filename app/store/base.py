"""The store interface every backend implements (embedded qdrant-edge today, Qdrant server next).

Ingestion writes through it and the search legs read through it; neither knows which engine is
behind it, so the same congruence tests can run against every backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

# What ``app.store`` offers besides the backends (it re-exports exactly these).
__all__ = [
    "BM25_VECTOR",
    "DENSE_VECTORS",
    "IMAGE_VECTOR",
    "INSTANCE_VECTOR",
    "TEXT_VECTOR",
    "Hit",
    "IndexStatus",
    "PointRecord",
    "SearchFilter",
    "StoreError",
    "StoreInfo",
    "VectorStore",
    "attribute_term",
    "category_ancestors",
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


@dataclass(frozen=True)
class StoreInfo:
    backend: str
    points: int
    indexed_vectors: int
    segments: int
    dim: int | None
    model_id: str | None
    extra: dict[str, Any] = field(default_factory=dict)


class StoreError(RuntimeError):
    """A store problem a person can act on (wrong model, missing collection, locked directory)."""


class VectorStore(Protocol):
    """Typed interface of the product's store."""

    def ensure_collection(
        self, dim: int, model_id: str, corpus: Sequence[str] = (), instance_dim: int = 0
    ) -> None:
        """Create the collection for vectors of ``dim`` made by ``model_id``, or check it matches.

        ``instance_dim`` > 0 adds the ``instance`` vector of that size (the model's identity
        embedding); the collection records it, and a model with another size is refused.

        ``corpus`` (the texts about to be indexed) sets BM25's average document length, fixed at
        creation: document weights depend on it, so changing it later would mix weights.
        Raises ``StoreError`` when the store holds another model's vectors or an older format.
        """

    def upsert(self, points: Sequence[PointRecord]) -> None: ...

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

    def search_dense(
        self,
        vector: np.ndarray,
        limit: int,
        flt: SearchFilter | None = None,
        using: str = IMAGE_VECTOR,
        min_score: float | None = None,
    ) -> list[Hit]:
        """Nearest points to ``vector`` (cosine) by their ``using`` vector, best first.

        ``min_score``: only hits at least this similar (applied inside the engine, together with
        the filter, so a floor and a filter never interact).
        """

    def search_bm25(
        self, text: str, limit: int, flt: SearchFilter | None = None, min_score: float | None = None
    ) -> list[Hit]:
        """BM25 over the products' text, best first; empty when no term matches."""

    def retrieve(self, ids: Sequence[str]) -> list[Hit]: ...

    def vectors(self, ids: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
        """The dense vectors of the given points: id -> vector name -> vector."""

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
