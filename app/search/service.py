"""The search service: embed the query, run the legs its inputs allow (concurrently), fuse, page.

One implementation for the HTTP API and the CLI. The steps, each timed in ``timings_ms``:
decode (+ crop) the photo, embed photo and text, predict the photo's category (optional), run
the legs in parallel threads (ONNX Runtime and the engine release the GIL), group hits by
product, fuse with the profile's method and weights, cut the requested page.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

from app.embedding.preprocess import load_image
from app.profiles.model import DEFAULT_PROFILE, FusionProfile, FusionSpec
from app.profiles.repository import ProfileError, ProfileRepository
from app.search import legs
from app.search.batching import MicroBatcher
from app.search.leg_names import (
    BM25,
    IMAGE_LEGS,
    IMAGE_TO_IMAGE,
    IMAGE_TO_TEXT,
    IMAGE_VECTOR_LEGS,
    TEXT_LEGS,
    TEXT_TO_IMAGE,
    TEXT_TO_TEXT,
)
from app.search.ranking import LegList, fuse_legs, group_hits, key_of
from app.search.schemas import (
    Crop,
    Filters,
    LegScore,
    PredictedCategory,
    Product,
    ProfileRef,
    SearchBody,
    SearchResponse,
    SearchResult,
)
from app.store import (
    IMAGE_VECTOR,
    TEXT_VECTOR,
    Hit,
    SearchFilter,
    VectorStore,
    category_ancestors,
)
from reranker import Fused

MAX_CANDIDATES = 1_000
CATEGORY_VOTERS = 10  # top image neighbours that vote on the predicted category


class QueryError(ValueError):
    """A query that cannot be run as given; the message tells the caller what to change."""


class NotFoundError(LookupError):
    """A product id the store does not hold."""


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
    offset: int = 0
    category: str | None = None  # shorthand for filters.category
    filters: Filters | None = None
    crop: Crop | None = None
    profile: str | None = None
    fusion: FusionSpec | None = None
    explain: bool = False
    group_by_product: bool = True
    predict_category: bool | None = None

    @classmethod
    def from_body(cls, body: SearchBody, image: bytes | None = None) -> SearchQuery:
        """The request as the API and the CLI both receive it, plus the photo's bytes."""
        return cls(
            text=body.q,
            image=image,
            k=body.k,
            offset=body.offset,
            category=body.category,
            filters=body.filters,
            crop=body.crop,
            profile=body.profile,
            fusion=body.fusion,
            explain=body.explain,
            group_by_product=body.group_by_product,
            predict_category=body.predict_category,
        )


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def _timed(fn: Callable[[], list[Hit]]) -> tuple[list[Hit], float]:
    t = time.perf_counter()
    hits = fn()
    return hits, _elapsed_ms(t)


def _crop(image: Image.Image, box: Crop) -> Image.Image:
    w, h = image.size
    left, top = round(box.x0 * w), round(box.y0 * h)
    right, bottom = max(round(box.x1 * w), left + 1), max(round(box.y1 * h), top + 1)
    return image.crop((left, top, right, bottom))


def predict_category(hits: Sequence[Hit], confidence: float) -> PredictedCategory | None:
    """Deepest category path shared by at least ``confidence`` of the top image neighbours.

    Neighbours vote with their category path at every depth; deeper paths are more useful but
    rarer, so the answer is the deepest one that still has the required share. Below the
    threshold at every depth, the best top-level category is returned with ``applied`` False.
    """
    paths = [
        category_ancestors(str(h.payload.get("category_path", ""))) for h in hits[:CATEGORY_VOTERS]
    ]
    paths = [p for p in paths if p]
    if not paths:
        return None
    best: PredictedCategory | None = None
    for depth in range(max(len(p) for p in paths)):
        votes = Counter(p[depth] for p in paths if len(p) > depth)
        path, count = votes.most_common(1)[0]
        share = count / len(paths)
        if share >= confidence:
            best = PredictedCategory(path=path, confidence=round(share, 3), applied=False)
        elif best is None:
            return PredictedCategory(path=path, confidence=round(share, 3), applied=False)
        else:
            break
    return best


class SearchService:
    """Search, similar products and search by examples over one store and one encoder."""

    def __init__(
        self,
        store: VectorStore,
        encoder: QueryEncoder,
        profiles: ProfileRepository | None = None,
        rrf_k: int = 60,
        max_k: int = 100,
        max_window: int = 1_000,
        leg_threads: int = 8,
        micro_batch: bool = False,
    ) -> None:
        self.store = store
        self.encoder = encoder
        self.profiles = profiles
        self.default_profile = DEFAULT_PROFILE.model_copy(update={"k": rrf_k})
        self.max_k = max_k
        self.max_window = max_window
        self._pool = ThreadPoolExecutor(max_workers=leg_threads, thread_name_prefix="search-leg")
        self._text_batcher: MicroBatcher[str] | None = None
        self._image_batcher: MicroBatcher[Image.Image] | None = None
        if micro_batch:
            self._text_batcher = MicroBatcher(encoder.encode_texts, name="text-batcher")
            self._image_batcher = MicroBatcher(encoder.encode_images, name="image-batcher")

    def close(self) -> None:
        for batcher in (self._text_batcher, self._image_batcher):
            if batcher is not None:
                batcher.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- request checks ----------------------------------------------------------------------

    def _check_page(self, k: int, offset: int) -> None:
        if not 1 <= k <= self.max_k:
            raise QueryError(f"k must be between 1 and {self.max_k}, got {k}")
        if offset < 0 or offset + k > self.max_window:
            raise QueryError(
                f"offset + k must be at most {self.max_window} (got {offset} + {k}); "
                "narrow the query with filters instead of paging that deep"
            )

    def profile(self, name: str | None) -> FusionProfile:
        if name is None or name == self.default_profile.name:
            if self.profiles is None:
                return self.default_profile
            found = self.profiles.get(self.default_profile.name)
            return self.default_profile if found.version == 0 else found
        if self.profiles is None:
            raise QueryError(f"no fusion profile {name!r}: this service has only 'default'")
        try:
            return self.profiles.get(name)
        except ProfileError as exc:
            raise QueryError(str(exc)) from exc

    @staticmethod
    def store_filter(filters: Filters | None, category: str | None = None) -> SearchFilter:
        f = filters or Filters()
        cat = (f.category or category or "").strip().strip("/") or None
        if f.category and category and f.category.strip("/") != category.strip("/"):
            raise QueryError("category and filters.category disagree; give one of them")
        attrs = tuple(sorted((k.strip(), v.strip()) for k, v in f.attributes.items()))
        if any(not k or not v for k, v in attrs):
            raise QueryError("filters.attributes: names and values must not be empty")
        return SearchFilter(
            category=cat, price_min=f.price_min, price_max=f.price_max, attributes=attrs
        )

    # -- search ------------------------------------------------------------------------------

    def _prepare(
        self, query: SearchQuery
    ) -> tuple[str | None, FusionProfile, FusionSpec, SearchFilter, tuple[str, ...]]:
        """Checked inputs: (text, profile, fusion, store filter, legs the inputs allow)."""
        text = (query.text or "").strip() or None
        if text is None and not query.image:
            raise QueryError("give a text query (q), an image, or both")
        self._check_page(query.k, query.offset)
        if query.crop is not None and not query.image:
            raise QueryError("crop applies to an image; none was sent")
        profile = self.profile(query.profile)
        spec = query.fusion or profile.spec()
        flt = self.store_filter(query.filters, query.category)
        available = (IMAGE_LEGS if query.image else ()) + (TEXT_LEGS if text else ())
        return text, profile, spec, flt, available

    def search(self, query: SearchQuery) -> SearchResponse:
        started = time.perf_counter()
        text, profile, spec, flt, available = self._prepare(query)
        wanted = spec.active(available)
        if not wanted:
            raise QueryError(f"every leg this query can use ({', '.join(available)}) has weight 0")
        timings: dict[str, float] = {}
        done, predicted = self._run_legs(query, text, profile, spec, flt, wanted, timings)
        for leg in wanted:
            timings[f"leg_{leg}"] = done[leg][1]

        response = self._fuse_page(
            [(leg, done[leg][0]) for leg in wanted],
            spec,
            query.k,
            query.offset,
            query.explain,
            query.group_by_product,
            timings,
            exact_match=profile.exact_match,
        )
        timings["total"] = _elapsed_ms(started)
        return SearchResponse(
            results=response,
            timings_ms=timings,
            model=self.encoder.model_id,
            legs=wanted,
            profile=ProfileRef(name=profile.name, version=profile.version),
            fusion=spec,
            offset=query.offset,
            predicted_category=predicted,
        )

    def leg_lists(self, query: SearchQuery) -> dict[str, LegList]:
        """Every leg the query's inputs allow, run once, each grouped by product: no fusion.

        For offline tuning, which re-fuses these lists under many weightings; the candidates,
        filters, floors and category prediction are the ones ``search`` would use.
        """
        text, profile, spec, flt, available = self._prepare(query)
        done, _ = self._run_legs(query, text, profile, spec, flt, list(available), {})
        return {leg: group_hits(done[leg][0], query.group_by_product) for leg in available}

    def _run_legs(
        self,
        query: SearchQuery,
        text: str | None,
        profile: FusionProfile,
        spec: FusionSpec,
        flt: SearchFilter,
        wanted: Sequence[str],
        timings: dict[str, float],
    ) -> tuple[dict[str, tuple[list[Hit], float]], PredictedCategory | None]:
        """Embed the inputs and run the ``wanted`` legs concurrently: (hits, ms) per leg."""
        limit = min(max(profile.candidates, (query.offset + query.k) * 4), MAX_CANDIDATES)
        floors = spec.floors

        # The text is embedded in a worker while the photo is decoded and embedded here.
        text_job: Future[np.ndarray] | None = None
        if text is not None and any(leg in wanted for leg in (TEXT_TO_IMAGE, TEXT_TO_TEXT)):
            text_job = self._pool.submit(self._embed_text, text, timings)
        image_vec = self._embed_photo(query, timings) if query.image else None
        text_vec = text_job.result() if text_job is not None else None

        predicted: PredictedCategory | None = None
        image_flt = flt
        first_image_hits: tuple[list[Hit], float] | None = None
        use_prediction = (
            query.predict_category
            if query.predict_category is not None
            else profile.predict_category
        )
        if image_vec is not None and use_prediction and not flt.category:
            t = time.perf_counter()
            first_image_hits = _timed(
                lambda: legs.image_to_image(
                    self.store, image_vec, limit, flt, floors.get(IMAGE_TO_IMAGE)
                )
            )
            predicted = predict_category(first_image_hits[0], profile.category_confidence)
            if predicted is not None and predicted.confidence >= profile.category_confidence:
                predicted = predicted.model_copy(update={"applied": True})
                image_flt = flt.with_category(predicted.path)
                first_image_hits = None  # re-run restricted to the category
            timings["predict_category"] = _elapsed_ms(t)

        runners: dict[str, Callable[[], list[Hit]]] = {}
        if image_vec is not None:
            runners[IMAGE_TO_IMAGE] = lambda: legs.image_to_image(
                self.store, image_vec, limit, image_flt, floors.get(IMAGE_TO_IMAGE)
            )
            runners[IMAGE_TO_TEXT] = lambda: legs.image_to_text(
                self.store, image_vec, limit, image_flt, floors.get(IMAGE_TO_TEXT)
            )
        if text_vec is not None:
            runners[TEXT_TO_IMAGE] = lambda: legs.text_to_image(
                self.store, text_vec, limit, flt, floors.get(TEXT_TO_IMAGE)
            )
            runners[TEXT_TO_TEXT] = lambda: legs.text_to_text(
                self.store, text_vec, limit, flt, floors.get(TEXT_TO_TEXT)
            )
        if text is not None:
            runners[BM25] = lambda: legs.bm25(self.store, text, limit, flt, floors.get(BM25))
        jobs: dict[str, Future[tuple[list[Hit], float]]] = {}
        done: dict[str, tuple[list[Hit], float]] = {}
        for leg in wanted:
            if leg == IMAGE_TO_IMAGE and first_image_hits is not None:
                done[leg] = first_image_hits
            else:
                jobs[leg] = self._pool.submit(_timed, runners[leg])
        t = time.perf_counter()
        for leg, job in jobs.items():
            done[leg] = job.result()
        timings["legs"] = _elapsed_ms(t)
        return done, predicted

    def _embed_text(self, text: str, timings: dict[str, float]) -> np.ndarray:
        t = time.perf_counter()
        if self._text_batcher is not None:
            vec: np.ndarray = self._text_batcher(text)
        else:
            vec = self.encoder.encode_texts([text])[0]
        timings["embed_text"] = _elapsed_ms(t)
        return vec

    def _embed_photo(self, query: SearchQuery, timings: dict[str, float]) -> np.ndarray:
        assert query.image is not None
        t = time.perf_counter()
        try:
            image = load_image(query.image)
        except Exception as exc:
            raise QueryError(f"the image could not be decoded: {exc}") from exc
        if query.crop is not None:
            image = _crop(image, query.crop)
        timings["decode"] = _elapsed_ms(t)
        t = time.perf_counter()
        if self._image_batcher is not None:
            vec: np.ndarray = self._image_batcher(image)
        else:
            vec = self.encoder.encode_images([image])[0]
        timings["embed_image"] = _elapsed_ms(t)
        return vec

    # -- fusion and results ------------------------------------------------------------------

    def _fuse_page(
        self,
        leg_hits: Sequence[tuple[str, list[Hit]]],
        spec: FusionSpec,
        k: int,
        offset: int,
        explain: bool,
        by_product: bool,
        timings: dict[str, float],
        exact_match: float | None = None,
    ) -> list[SearchResult]:
        t = time.perf_counter()
        lists: dict[str, LegList] = {}
        best: dict[str, Hit] = {}  # key -> a hit carrying its payload
        images: dict[str, dict[str, float]] = {}  # key -> image file -> best image-leg score
        for leg, hits in leg_hits:
            lists[leg] = group_hits(hits, by_product)
            for hit in hits:
                key = key_of(hit, by_product)
                best.setdefault(key, hit)
                if leg in IMAGE_VECTOR_LEGS:
                    name = str(hit.payload.get("image_file", ""))
                    seen = images.setdefault(key, {})
                    seen[name] = max(seen.get(name, float("-inf")), hit.score)
        fused, exact = fuse_legs(lists, spec, exact_match)
        names = spec.active(lists)
        fused = fused[offset : offset + k]
        timings["fusion"] = _elapsed_ms(t)
        positions = [
            {key: (r, s) for r, (key, s) in enumerate(lists[leg], start=1)} for leg in names
        ]
        return [
            self._result(
                f, best[f.item], images.get(f.item, {}), names, positions, explain, f.item in exact
            )
            for f in fused
        ]

    @staticmethod
    def _result(
        f: Fused[str],
        hit: Hit,
        matched: dict[str, float],
        names: Sequence[str],
        positions: Sequence[dict[str, tuple[int, float]]],
        explain: bool,
        exact: bool = False,
    ) -> SearchResult:
        payload = hit.payload
        ranked = sorted(matched, key=lambda n: -matched[n])
        own = [str(x) for x in payload.get("images", [])] or [str(payload.get("image_file", ""))]
        ranks = {
            leg: pos[f.item][0] for leg, pos in zip(names, positions, strict=True) if f.item in pos
        }
        details = None
        if explain:
            details = {
                leg: LegScore(rank=pos[f.item][0], score=pos[f.item][1], contribution=part)
                for leg, pos, part in zip(names, positions, f.contributions, strict=True)
                if f.item in pos
            }
        price = payload.get("price")
        return SearchResult(
            product_id=str(payload.get("product_id", "")),
            title=str(payload.get("title", "")),
            category=str(payload.get("category_path", "")),
            score=f.score,
            image=ranked[0] if ranked else str(payload.get("image_file", own[0])),
            matched_images=ranked,
            price=float(price) if isinstance(price, (int, float)) else None,
            ranks=ranks,
            exact_match=exact,
            explain=details,
        )

    # -- products ------------------------------------------------------------------------------

    def product(self, product_id: str) -> Product:
        points = self.store.product_points(product_id)
        if not points:
            raise NotFoundError(f"no product {product_id!r} in the catalog")
        p = points[0].payload
        attributes = p.get("attributes") or {}
        return Product(
            product_id=product_id,
            title=str(p.get("title", "")),
            category=str(p.get("category_path", "")),
            description=str(p.get("description", "")),
            price=p.get("price"),
            year=p.get("year"),
            attributes={str(k): str(v) for k, v in dict(attributes).items()},
            images=[str(x) for x in p.get("images", [])],
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
                for name in (IMAGE_VECTOR, TEXT_VECTOR)
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
        profile = self.profile(None)
        spec = FusionSpec(method="rrf", k=profile.k)
        limit = min(max(profile.candidates, (offset + k) * 4), MAX_CANDIDATES)
        t = time.perf_counter()
        jobs = {
            IMAGE_TO_IMAGE: self._pool.submit(
                legs.image_to_image, self.store, image_vec, limit, flt, None
            ),
            TEXT_TO_TEXT: self._pool.submit(
                legs.text_to_text, self.store, text_vec, limit, flt, None
            ),
        }
        leg_hits = [(leg, job.result()) for leg, job in jobs.items()]
        timings["legs"] = _elapsed_ms(t)
        results = self._fuse_page(leg_hits, spec, k, offset, False, True, timings)
        timings["total"] = _elapsed_ms(started)
        return SearchResponse(
            results=results,
            timings_ms=timings,
            model=self.encoder.model_id,
            legs=list(jobs),
            profile=ProfileRef(name=profile.name, version=profile.version),
            fusion=spec,
            offset=offset,
        )

    def similar(
        self, product_id: str, k: int = 10, offset: int = 0, filters: Filters | None = None
    ) -> SearchResponse:
        """Products whose images (and text) are nearest to this product's; itself excluded."""
        started = time.perf_counter()
        self._check_page(k, offset)
        vec = self._product_vectors([product_id])[product_id]
        flt = self.store_filter(filters).excluding([product_id])
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
        self._check_page(k, offset)
        both = set(positive) & set(negative)
        if both:
            raise QueryError(f"product(s) both positive and negative: {', '.join(sorted(both))}")
        vecs = self._product_vectors([*positive, *negative])
        query: dict[str, np.ndarray] = {}
        for name in (IMAGE_VECTOR, TEXT_VECTOR):
            pos = np.mean([vecs[p][name] for p in positive], axis=0)
            if negative:
                neg = np.mean([vecs[n][name] for n in negative], axis=0)
                pos = pos + (pos - neg)
            query[name] = _unit(pos)
        flt = self.store_filter(filters).excluding([*positive, *negative])
        return self._vector_query(
            query[IMAGE_VECTOR], query[TEXT_VECTOR], flt, k, offset, started, {}
        )


def _unit(v: Any) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float32)
    norm = float(np.linalg.norm(arr))
    return arr / norm if norm > 0 else arr
