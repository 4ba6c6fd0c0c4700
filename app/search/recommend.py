"""Recommendations: one product as stored, products similar to it, and search by examples.

Both searches are vector queries built from stored products (no encoder): the image vector
against catalog photos and the text vector against product texts, sent together as one batch
(one round trip to a Qdrant server), fused with RRF.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.profiles.model import FusionSpec
from app.search import legs
from app.search.checks import QueryChecks, store_filter
from app.search.errors import NotFoundError, QueryError
from app.search.images import image_url
from app.search.leg_names import IMAGE_TO_IMAGE, TEXT_TO_TEXT
from app.search.results import fuse_page
from app.search.running import candidate_limit
from app.search.schemas import Filters, Product, ProfileRef, SearchResponse
from app.search.timing import elapsed_ms
from app.store import IMAGE_VECTOR, TEXT_VECTOR, SearchFilter, VectorStore
from app.store.fields import (
    ATTRIBUTES,
    CATEGORY_PATH,
    DESCRIPTION,
    IMAGE_FILE,
    IMAGE_PATH,
    IMAGES,
    PRICE,
    TITLE,
    YEAR,
)

_VECTORS = (IMAGE_VECTOR, TEXT_VECTOR)


def _unit(v: Any) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float32)
    norm = float(np.linalg.norm(arr))
    return arr / norm if norm > 0 else arr


class Recommender:
    """Product lookups and product-to-product searches over one store."""

    def __init__(self, store: VectorStore, checks: QueryChecks, model_id: str) -> None:
        self.store = store
        self.checks = checks
        self.model_id = model_id

    def product(self, product_id: str) -> Product:
        points = self.store.product_points(product_id)
        if not points:
            raise NotFoundError(f"no product {product_id!r} in the catalog")
        p = points[0].payload
        images = [str(x) for x in p.get(IMAGES, [])]
        attributes = p.get(ATTRIBUTES) or {}
        return Product(
            product_id=product_id,
            title=str(p.get(TITLE, "")),
            category=str(p.get(CATEGORY_PATH, "")),
            description=str(p.get(DESCRIPTION, "")),
            price=p.get(PRICE),
            year=p.get(YEAR),
            attributes={str(k): str(v) for k, v in dict(attributes).items()},
            images=images,
            image_urls=[image_url(product_id, i) for i in range(len(images))],
        )

    def image_path(self, product_id: str, index: int) -> Path:
        """The file of the product's ``index``-th image, as ingested; only what the store holds."""
        for hit in self.store.product_points(product_id):
            images = [str(x) for x in hit.payload.get(IMAGES, [])]
            if 0 <= index < len(images) and hit.payload.get(IMAGE_FILE) == images[index]:
                return Path(str(hit.payload[IMAGE_PATH]))
        raise NotFoundError(f"no image {index} of product {product_id!r} in the catalog")

    def similar(
        self, product_id: str, k: int = 10, offset: int = 0, filters: Filters | None = None
    ) -> SearchResponse:
        """Products whose images (and text) are nearest to this product's; itself excluded."""
        started = time.perf_counter()
        self.checks.check_page(k, offset)
        vec = self._product_vectors([product_id])[product_id]
        flt = store_filter(filters).excluding([product_id])
        return self._vector_query(vec[IMAGE_VECTOR], vec[TEXT_VECTOR], flt, k, offset, started, {})

    def examples(
        self,
        positive: Sequence[str],
        negative: Sequence[str] = (),
        k: int = 10,
        offset: int = 0,
        filters: Filters | None = None,
    ) -> SearchResponse:
        """Products like the positives and unlike the negatives (examples excluded).

        The query vector is Rocchio's: the positives' mean moved away from the negatives' mean
        (Rocchio, "Relevance feedback in information retrieval", 1971), the same as Qdrant's
        ``average_vector`` recommend strategy, per vector space.
        """
        started = time.perf_counter()
        self.checks.check_page(k, offset)
        both = set(positive) & set(negative)
        if both:
            raise QueryError(f"product(s) both positive and negative: {', '.join(sorted(both))}")
        vecs = self._product_vectors([*positive, *negative])
        query: dict[str, np.ndarray] = {}
        for name in _VECTORS:
            pos = np.mean([vecs[p][name] for p in positive], axis=0)
            if negative:
                neg = np.mean([vecs[n][name] for n in negative], axis=0)
                pos = pos + (pos - neg)
            query[name] = _unit(pos)
        flt = store_filter(filters).excluding([*positive, *negative])
        return self._vector_query(
            query[IMAGE_VECTOR], query[TEXT_VECTOR], flt, k, offset, started, {}
        )

    def _product_vectors(self, product_ids: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
        """Mean image and text vector of each product (its images' vectors, normalised)."""
        out: dict[str, dict[str, np.ndarray]] = {}
        missing = []
        for pid in dict.fromkeys(product_ids):
            points = self.store.product_points(pid)
            if not points:
                missing.append(pid)
                continue
            vectors = self.store.vectors([h.id for h in points])
            out[pid] = {
                name: _unit(np.mean([v[name] for v in vectors.values()], axis=0))
                for name in _VECTORS
            }
        if missing:
            raise NotFoundError(f"no product(s) {', '.join(map(repr, missing))} in the catalog")
        return out

    def _vector_query(
        self,
        image_vec: np.ndarray,
        text_vec: np.ndarray,
        flt: SearchFilter,
        k: int,
        offset: int,
        started: float,
        timings: dict[str, float],
    ) -> SearchResponse:
        profile = self.checks.profile(None)
        spec = FusionSpec(method="rrf", k=profile.k)
        limit = candidate_limit(profile.candidates, offset, k)
        t = time.perf_counter()
        queries = {
            IMAGE_TO_IMAGE: legs.dense_query(image_vec, limit, flt, IMAGE_VECTOR),
            TEXT_TO_TEXT: legs.dense_query(text_vec, limit, flt, TEXT_VECTOR),
        }
        answers = self.store.search_batch(list(queries.values()))
        leg_hits = list(zip(queries, answers, strict=True))
        timings["legs"] = elapsed_ms(t)
        results = fuse_page(leg_hits, spec, k, offset, False, True, timings)
        timings["total"] = elapsed_ms(started)
        return SearchResponse(
            results=results,
            timings_ms=timings,
            model=self.model_id,
            legs=list(queries),
            profile=ProfileRef(name=profile.name, version=profile.version),
            fusion=spec,
            offset=offset,
        )
