"""Running the legs: embed the query, predict its category if asked, run the legs concurrently.

The legs run in worker threads (ONNX Runtime and the engine release the GIL); the text is
embedded in a worker while the photo is decoded and embedded on the caller's thread.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from app.search import legs
from app.search.checks import Prepared
from app.search.encode import PhotoVectors, QueryEmbedder
from app.search.leg_names import (
    BM25,
    IMAGE_INSTANCE,
    IMAGE_TO_IMAGE,
    IMAGE_TO_TEXT,
    TEXT_TO_IMAGE,
    TEXT_TO_TEXT,
)
from app.search.query import SearchQuery
from app.search.schemas import PredictedCategory
from app.search.timing import elapsed_ms, timed
from app.store import Hit, SearchFilter, VectorStore, category_ancestors
from app.store.fields import CATEGORY_PATH

MAX_CANDIDATES = 1_000
CATEGORY_VOTERS = 10  # top image neighbours that vote on the predicted category

LegHits = dict[str, tuple[list[Hit], float]]  # leg -> (hits, ms)


def candidate_limit(candidates: int, offset: int, k: int) -> int:
    """Hits each leg fetches: the profile's candidates, at least 4 pages' worth, capped."""
    return min(max(candidates, (offset + k) * 4), MAX_CANDIDATES)


def predict_category(hits: Sequence[Hit], confidence: float) -> PredictedCategory | None:
    """Deepest category path shared by at least ``confidence`` of the top image neighbours.

    Neighbours vote with their category path at every depth; deeper paths are more useful but
    rarer, so the answer is the deepest one that still has the required share. Below the
    threshold at every depth, the best top-level category is returned with ``applied`` False.
    """
    paths = [
        category_ancestors(str(h.payload.get(CATEGORY_PATH, ""))) for h in hits[:CATEGORY_VOTERS]
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


# Nearest points to the whole photo that the exact-match rule looks at: the very shot, if the
# catalog has it, is the first; a few more cover its other images and near-duplicates.
EXACT_CHECKED = 5


class LegRunner:
    """Runs a checked query's legs against one store, on a shared thread pool."""

    def __init__(self, store: VectorStore, embedder: QueryEmbedder, pool: ThreadPoolExecutor):
        self.store = store
        self.embedder = embedder
        self.pool = pool

    def run(
        self,
        query: SearchQuery,
        prep: Prepared,
        wanted: Sequence[str],
        timings: dict[str, float],
    ) -> tuple[LegHits, PredictedCategory | None, dict[str, list[Hit]]]:
        """Embed the inputs and run the ``wanted`` legs concurrently: (hits, ms) per leg, the
        predicted category, and the whole photo's nearest points (``whole_photo_searches``)."""
        text, profile, flt, floors = prep.text, prep.profile, prep.flt, prep.spec.floors
        limit = candidate_limit(profile.candidates, query.offset, query.k)

        # The two towers run one after the other: each ONNX Runtime session already uses every
        # core, and run side by side they slowed each other down more than they overlapped
        # (photo + text, 3k products: 52 ms with both at once, 33 ms in turn).
        text_vec: np.ndarray | None = None
        if text is not None and any(leg in wanted for leg in (TEXT_TO_IMAGE, TEXT_TO_TEXT)):
            text_vec = self.embedder.text(text, timings)
        image_vec: np.ndarray | None = None
        instance_vec: np.ndarray | None = None
        photo: PhotoVectors | None = None
        if query.image:
            photo = self.embedder.photo(query.image, query.crop, timings)
            image_vec, instance_vec = photo.image, photo.instance

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
            first_image_hits = timed(
                lambda: legs.image_to_image(
                    self.store, image_vec, limit, flt, floors.get(IMAGE_TO_IMAGE)
                )
            )
            predicted = predict_category(first_image_hits[0], profile.category_confidence)
            if predicted is not None and predicted.confidence >= profile.category_confidence:
                predicted = predicted.model_copy(update={"applied": True})
                image_flt = flt.with_category(predicted.path)
                first_image_hits = None  # re-run restricted to the category
            timings["predict_category"] = elapsed_ms(t)

        runners: dict[str, Callable[[], list[Hit]]] = {}
        if image_vec is not None:
            runners[IMAGE_TO_IMAGE] = lambda: legs.image_to_image(
                self.store, image_vec, limit, image_flt, floors.get(IMAGE_TO_IMAGE)
            )
            runners[IMAGE_TO_TEXT] = lambda: legs.image_to_text(
                self.store, image_vec, limit, image_flt, floors.get(IMAGE_TO_TEXT)
            )
        if instance_vec is not None:
            runners[IMAGE_INSTANCE] = lambda: legs.image_instance(
                self.store, instance_vec, limit, image_flt, floors.get(IMAGE_INSTANCE)
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
        done: LegHits = {}
        for leg in wanted:
            if leg == IMAGE_TO_IMAGE and first_image_hits is not None:
                done[leg] = first_image_hits
            else:
                jobs[leg] = self.pool.submit(timed, runners[leg])
        # The exact-match rule's searches run beside the legs, not after them.
        exact_jobs: dict[str, Future[list[Hit]]] = {}
        if photo is not None and profile.exact_match is not None:
            searches = self.whole_photo_searches(photo, image_flt, wanted)
            exact_jobs = {leg: self.pool.submit(search) for leg, search in searches.items()}
        t = time.perf_counter()
        for leg, job in jobs.items():
            done[leg] = job.result()
        timings["legs"] = elapsed_ms(t)
        whole = {leg: job.result() for leg, job in exact_jobs.items()}
        return done, predicted, whole

    def whole_photo_searches(
        self, photo: PhotoVectors, flt: SearchFilter, wanted: Sequence[str]
    ) -> dict[str, Callable[[], list[Hit]]]:
        """Per image leg that runs, a search for the points nearest the whole photo's own vector.

        The legs search with the views' mean, which never reaches cosine 1 for the very catalog
        shot and may even miss it; the exact-match rule asks "is this very photo in the
        catalog?", which the whole photo's nearest neighbours answer. Both judge candidates are
        searched, so offline re-fusion under other weights judges as the service would.
        """
        out: dict[str, Callable[[], list[Hit]]] = {}
        whole_instance = photo.whole_instance
        if IMAGE_INSTANCE in wanted and whole_instance is not None:
            out[IMAGE_INSTANCE] = lambda: legs.image_instance(
                self.store, whole_instance, EXACT_CHECKED, flt, None
            )
        if IMAGE_TO_IMAGE in wanted:
            out[IMAGE_TO_IMAGE] = lambda: legs.image_to_image(
                self.store, photo.whole_image, EXACT_CHECKED, flt, None
            )
        return out
