"""The search service: embed the query, run the legs its inputs allow, fuse, group by product."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from app.embedding.preprocess import load_image
from app.search import legs
from app.search.schemas import SearchResponse, SearchResult
from app.store import Hit, SearchFilter, VectorStore
from reranker import rrf


class QueryError(ValueError):
    """A query that cannot be run as given; the message tells the caller what to change."""


class QueryEncoder(Protocol):
    """What the service needs from the ONNX encoder."""

    @property
    def model_id(self) -> str: ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class SearchQuery:
    text: str | None = None
    image: bytes | None = None
    k: int = 10
    category: str | None = None


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def _products(hits: Sequence[Hit]) -> tuple[list[str], dict[str, Hit]]:
    """Product ids ranked by their best image, and that best image's hit."""
    order: list[str] = []
    best: dict[str, Hit] = {}
    for hit in hits:
        pid = str(hit.payload.get("product_id", hit.id))
        if pid not in best:
            best[pid] = hit
            order.append(pid)
    return order, best


class SearchService:
    """One implementation of search, used by the HTTP API and the CLI alike."""

    def __init__(
        self,
        store: VectorStore,
        encoder: QueryEncoder,
        rrf_k: int = 60,
        max_k: int = 100,
        candidates: int = 100,
    ) -> None:
        self.store = store
        self.encoder = encoder
        self.rrf_k = rrf_k
        self.max_k = max_k
        self.candidates = candidates

    def validate(self, query: SearchQuery) -> SearchQuery:
        text = (query.text or "").strip() or None
        if text is None and not query.image:
            raise QueryError("give a text query (q), an image, or both")
        if not 1 <= query.k <= self.max_k:
            raise QueryError(f"k must be between 1 and {self.max_k}, got {query.k}")
        category = (query.category or "").strip().strip("/") or None
        return SearchQuery(text=text, image=query.image or None, k=query.k, category=category)

    def search(self, query: SearchQuery) -> SearchResponse:
        started = time.perf_counter()
        query = self.validate(query)
        timings: dict[str, float] = {}
        flt = SearchFilter(category=query.category)
        # Fetch more points than products asked for: several images may belong to one product.
        limit = max(self.candidates, query.k * 4)
        results: list[legs.LegResult] = []

        if query.image is not None:
            t = time.perf_counter()
            try:
                image = load_image(query.image)
            except Exception as exc:
                raise QueryError(f"the image could not be decoded: {exc}") from exc
            timings["decode"] = _elapsed_ms(t)
            t = time.perf_counter()
            image_vec = self.encoder.encode_images([image])[0]
            timings["embed_image"] = _elapsed_ms(t)
            t = time.perf_counter()
            hits = legs.image_to_image(self.store, image_vec, limit, flt)
            results.append(legs.LegResult(legs.IMAGE_TO_IMAGE, hits, _elapsed_ms(t)))

        if query.text is not None:
            t = time.perf_counter()
            text_vec = self.encoder.encode_texts([query.text])[0]
            timings["embed_text"] = _elapsed_ms(t)
            t = time.perf_counter()
            hits = legs.text_to_image(self.store, text_vec, limit, flt)
            results.append(legs.LegResult(legs.TEXT_TO_IMAGE, hits, _elapsed_ms(t)))
            t = time.perf_counter()
            hits = legs.bm25(self.store, query.text, limit, flt)
            results.append(legs.LegResult(legs.BM25, hits, _elapsed_ms(t)))

        for leg in results:
            timings[f"leg_{leg.name}"] = leg.ms

        t = time.perf_counter()
        rankings: list[list[str]] = []
        best: dict[str, Hit] = {}
        ranks: dict[str, dict[str, int]] = {}
        for leg in results:
            order, leg_best = _products(leg.hits)
            rankings.append(order)
            for rank, pid in enumerate(order, start=1):
                ranks.setdefault(pid, {})[leg.name] = rank
                best.setdefault(pid, leg_best[pid])
        fused = rrf(rankings, k=self.rrf_k)[: query.k]
        timings["fusion"] = _elapsed_ms(t)

        out = [
            SearchResult(
                product_id=pid,
                title=str(best[pid].payload.get("title", "")),
                category=str(best[pid].payload.get("category_path", "")),
                score=score,
                image=str(best[pid].payload.get("image_file", "")),
                ranks=ranks[pid],
            )
            for pid, score in fused
        ]
        timings["total"] = _elapsed_ms(started)
        return SearchResponse(
            results=out,
            timings_ms=timings,
            model=self.encoder.model_id,
            legs=[leg.name for leg in results],
        )
