"""The search service: embed the query, run the legs its inputs allow (concurrently), fuse, page.

One façade for the HTTP API, the CLI and evaluation. The steps, each timed in ``timings_ms``:
decode (+ crop) the photo, embed photo and text, predict the photo's category (optional), run
the legs in worker threads (see ``running``), group hits by product, fuse with the profile's
method and weights, cut the requested page, and fetch the page's payloads.

The parts live beside it: ``query`` (the request), ``checks`` (request checks), ``encode``
and ``running`` (embedding, category prediction, the legs), ``results`` (fusion → page →
results) and ``recommend`` (products, similar products, search by examples).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from app.embedding.preprocess import MAX_PIXELS
from app.profiles.model import DEFAULT_PROFILE, FusionProfile
from app.profiles.repository import ProfileRepository
from app.search.checks import Prepared, QueryChecks, store_filter
from app.search.encode import QueryEmbedder, QueryEncoder
from app.search.errors import QueryError
from app.search.facets import CATEGORY_KEY, category_facets
from app.search.query import SearchQuery
from app.search.ranking import LegList, group_hits
from app.search.recommend import Recommender
from app.search.results import fuse_page, judged_by_key
from app.search.running import LegRunner
from app.search.schemas import Filters, Product, ProfileRef, SearchResponse
from app.search.timing import SearchObserver, elapsed_ms
from app.store import INSTANCE_VECTOR, Hit, SearchFilter, VectorStore

__all__ = ["SearchService"]


class SearchService:
    """Search, similar products and search by examples over one store and one encoder."""

    def __init__(
        self,
        store: VectorStore,
        encoder: QueryEncoder,
        profiles: ProfileRepository | None = None,
        rrf_k: int | None = None,
        max_k: int = 100,
        max_window: int = 1_000,
        leg_threads: int = 8,
        micro_batch: bool = False,
        max_decodes: int = 4,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.store = store
        self.encoder = encoder
        self.profiles = profiles
        self.default_profile = (
            DEFAULT_PROFILE if rrf_k is None else DEFAULT_PROFILE.model_copy(update={"k": rrf_k})
        )
        self.max_k = max_k
        self.max_window = max_window
        self._pool = ThreadPoolExecutor(max_workers=leg_threads, thread_name_prefix="search-leg")
        self._checks = QueryChecks(
            self.default_profile, profiles, max_k, max_window, self.has_instance
        )
        self._embedder = QueryEmbedder(
            encoder, micro_batch, max_decodes=max_decodes, max_pixels=max_pixels
        )
        self._runner = LegRunner(store, self._embedder, self._pool)
        self._recommender = Recommender(store, self._checks, encoder.model_id)
        self._observer: SearchObserver | None = None

    def observe(self, observer: SearchObserver | None) -> None:
        """Report each search's timings and each query-encoder run to ``observer``."""
        self._observer = observer
        self._embedder.observer = observer

    def has_instance(self) -> bool:
        """Whether the ``image_instance`` leg can run: the model and the store both have it."""
        return bool(self.encoder.instance_dim) and INSTANCE_VECTOR in self.store.dense_vectors()

    def close(self) -> None:
        self._embedder.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- request checks ----------------------------------------------------------------------

    def profile(self, name: str | None) -> FusionProfile:
        return self._checks.profile(name)

    @staticmethod
    def store_filter(filters: Filters | None, category: str | None = None) -> SearchFilter:
        return store_filter(filters, category)

    # -- search ------------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResponse:
        started = time.perf_counter()
        prep = self._checks.prepare(query)
        wanted = prep.spec.active(prep.available)
        if not wanted:
            raise QueryError(
                f"every leg this query can use ({', '.join(prep.available)}) has weight 0"
            )
        timings: dict[str, float] = {}
        # One hold for every store call of this answer (legs and facets): a sync running
        # beside it lands whole products before or after it, never between two legs.
        with self.store.reading():
            response = self._search(query, prep, wanted, timings, started)
        if self._observer is not None:
            self._observer.search_timings(response.timings_ms)
        return response

    def _search(
        self,
        query: SearchQuery,
        prep: Prepared,
        wanted: list[str],
        timings: dict[str, float],
        started: float,
    ) -> SearchResponse:
        done, predicted, whole = self._runner.run(query, prep, wanted, timings)
        for leg in wanted:
            timings[f"leg_{leg}"] = done[leg][1]

        window: list[Hit] | None = [] if query.facets else None
        results = fuse_page(
            [(leg, done[leg][0]) for leg in wanted],
            prep.spec,
            query.k,
            query.offset,
            query.explain,
            query.group_by_product,
            timings,
            exact_match=prep.profile.exact_match,
            whole_photo=whole,
            window=window,
            page_payloads=self._page_payloads,
        )
        facets = None
        if window is not None:
            t = time.perf_counter()
            facets = {CATEGORY_KEY: category_facets(self.store, window)}
            timings["facets"] = elapsed_ms(t)
        timings["total"] = elapsed_ms(started)
        return SearchResponse(
            results=results,
            timings_ms=timings,
            model=self.encoder.model_id,
            legs=wanted,
            profile=ProfileRef(name=prep.profile.name, version=prep.profile.version),
            fusion=prep.spec,
            offset=query.offset,
            predicted_category=predicted,
            facets=facets,
        )

    def _page_payloads(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {h.id: h.payload for h in self.store.retrieve(ids)}

    def leg_lists(
        self, query: SearchQuery
    ) -> tuple[dict[str, LegList], dict[str, dict[str, float]]]:
        """Every leg the query's inputs allow, run once, each grouped by product: no fusion;
        and the exact-match rule's cosines per leg and key (``fuse_legs``'s ``judged``).

        For offline tuning, which re-fuses these lists under many weightings; the candidates,
        filters, floors and category prediction are the ones ``search`` would use.
        """
        prep = self._checks.prepare(query)
        with self.store.reading():
            done, _, whole = self._runner.run(
                query, prep, list(prep.available), {}, every_judge=True
            )
        leg_hits = [(leg, done[leg][0]) for leg in prep.available]
        lists = {leg: group_hits(hits, query.group_by_product) for leg, hits in leg_hits}
        return lists, judged_by_key(whole, query.group_by_product)

    # -- products ----------------------------------------------------------------------------

    def product(self, product_id: str) -> Product:
        with self.store.reading():
            return self._recommender.product(product_id)

    def image_path(self, product_id: str, index: int) -> Path:
        """The file of a product's ``index``-th image; ``NotFoundError`` unless the store has it."""
        with self.store.reading():
            return self._recommender.image_path(product_id, index)

    def similar(
        self, product_id: str, k: int = 10, offset: int = 0, filters: Filters | None = None
    ) -> SearchResponse:
        """Products whose images (and text) are nearest to this product's; itself excluded."""
        with self.store.reading():
            return self._recommender.similar(product_id, k, offset, filters)

    def examples(
        self,
        positive: Sequence[str],
        negative: Sequence[str] = (),
        k: int = 10,
        offset: int = 0,
        filters: Filters | None = None,
    ) -> SearchResponse:
        """Products like the positives and unlike the negatives (examples excluded)."""
        with self.store.reading():
            return self._recommender.examples(positive, negative, k, offset, filters)
