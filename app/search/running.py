"""Running the legs: embed the query, predict its category if asked, run the legs concurrently.

The legs run in worker threads, each started as soon as its input exists. ONNX Runtime releases
the GIL; qdrant-edge holds it while it searches (three legs in threads take as long as one
after another), so the threads overlap the engine with the model runs, not with each other.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial

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
from app.search.ranking import judge_leg
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


# The dense legs' searches, by leg: (store, vector, limit, filter, floor) -> hits; those in
# ``ANCHORED_BY`` also take ``anchors``.
DENSE_LEGS: dict[str, Callable[..., list[Hit]]] = {
    TEXT_TO_IMAGE: legs.text_to_image,
    TEXT_TO_TEXT: legs.text_to_text,
    IMAGE_TO_IMAGE: legs.image_to_image,
    IMAGE_TO_TEXT: legs.image_to_text,
    IMAGE_INSTANCE: legs.image_instance,
}

# Leg -> the leg whose first hits anchor it: where those hits show that the leg's own walk
# missed a category, it also searches inside it (``legs.cross_modal``: a category they name;
# ``legs.image_to_image``: one where a hit outscores the walk's 10th).
ANCHORED_BY = {
    TEXT_TO_IMAGE: TEXT_TO_TEXT,
    IMAGE_TO_TEXT: IMAGE_TO_IMAGE,
    IMAGE_TO_IMAGE: IMAGE_INSTANCE,
}

# Nearest points to the whole photo that the exact-match rule looks at: the very shot, if the
# catalog has it, is the first; a few more cover its other images and near-duplicates.
EXACT_CHECKED = 5
# The instance search's HNSW beam: identity vectors put a photo's catalog shot right beside
# it, and at 100k products a beam of 128 found the exact top 5 for 180 of 180 dev photos, in
# 3 ms instead of the store beam's 8. The image vectors keep the store's beam: at 128, 5 of
# 180 shelf photos got a different nearest point.
EXACT_CHECK_EF = 128


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
        every_judge: bool = False,
    ) -> tuple[LegHits, PredictedCategory | None, dict[str, list[Hit]]]:
        """Embed the inputs and run the ``wanted`` legs concurrently: (hits, ms) per leg, the
        predicted category, and the whole photo's nearest points (``whole_photo_searches``;
        ``every_judge``: for each image leg, not only the one the exact-match rule judges by)."""
        text, profile, flt, floors = prep.text, prep.profile, prep.flt, prep.spec.floors
        limit = candidate_limit(profile.candidates, query.offset, query.k)
        # Each job runs one leg, or a leg and then those it anchors (``start_chain``):
        # leg -> (hits, ms).
        jobs: dict[str, Future[LegHits]] = {}
        done: LegHits = {}

        def start(leg: str, search: Callable[[], list[Hit]]) -> None:
            if leg in wanted:
                jobs[leg] = self.pool.submit(lambda: {leg: timed(search)})

        def start_chain(
            steps: Sequence[tuple[str, np.ndarray]],
            leg_flt: SearchFilter,
            given: LegHits | None = None,
        ) -> None:
            """The wanted ``steps`` (leg, query vector), each anchored on the first hits of the
            step before it (``ANCHORED_BY``) where that one ran unfloored: a leg and those it
            anchors run one after another in one job, so no worker waits on another's job.
            ``given``: hits a step already has (not searched again, not returned).

            A cross-modal leg whose own leg does not run searches its anchors itself
            (``legs.cross_modal``); the photo leg without the identity leg runs unanchored.
            """
            given = given or {}
            groups: list[tuple[list[Hit] | None, list[tuple[str, np.ndarray]]]] = []
            before: str | None = None  # the step before, if it ran
            for leg, vec in steps:
                if leg in given:
                    groups.append((given[leg][0], []))
                elif leg not in wanted:
                    before = None
                    continue
                elif (
                    before is not None
                    and ANCHORED_BY.get(leg) == before
                    and floors.get(before) is None
                ):
                    groups[-1][1].append((leg, vec))
                else:
                    groups.append((None, [(leg, vec)]))
                before = leg
            for seed, group in groups:
                if group:
                    jobs[group[-1][0]] = self.pool.submit(run_group, seed, group, leg_flt)

        def run_group(
            anchors: list[Hit] | None,
            group: Sequence[tuple[str, np.ndarray]],
            leg_flt: SearchFilter,
        ) -> LegHits:
            """Searches ``group``'s legs in turn, each anchored on the hits before it."""
            out: LegHits = {}
            for leg, vec in group:
                extra = {} if anchors is None else {"anchors": anchors}
                search = partial(DENSE_LEGS[leg], self.store, vec, limit, leg_flt, floors.get(leg))
                out[leg] = timed(partial(search, **extra))
                anchors = out[leg][0]
            return out

        # The photo is decoded before any leg starts: decoding takes the GIL, which a leg's
        # engine search holds for milliseconds (photo + text at 100k: decode 0.8 -> 6 ms when
        # the text legs ran first). An unreadable photo then fails before any search.
        image = self.embedder.decode(query.image, query.crop, timings) if query.image else None
        # Each leg starts as soon as its input exists, so the engine's searches (which hold the
        # GIL) run while a tower runs in ONNX Runtime (which releases it): BM25 needs no
        # vector, the text legs run beside the image tower.
        if text is not None:
            start(BM25, lambda: legs.bm25(self.store, text, limit, flt, floors.get(BM25)))
        # The two towers run one after the other: each ONNX Runtime session already uses every
        # core, and run side by side they slowed each other down more than they overlapped
        # (photo + text, 3k products: 52 ms with both at once, 33 ms in turn).
        if text is not None and any(leg in wanted for leg in (TEXT_TO_IMAGE, TEXT_TO_TEXT)):
            text_vec = self.embedder.text(text, timings)
            start_chain([(TEXT_TO_TEXT, text_vec), (TEXT_TO_IMAGE, text_vec)], flt)
        image_vec: np.ndarray | None = None
        instance_vec: np.ndarray | None = None
        photo: PhotoVectors | None = None
        if image is not None:
            try:
                photo = self.embedder.embed_photo(image, timings)
            except BaseException:
                # A photo the model cannot embed fails the query: the legs already started end
                # first, inside the caller's hold on the store (``VectorStore.reading``).
                wait([job for job in jobs.values() if not job.cancel()])
                raise
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
                first_image_hits = None  # searched outside the category: re-run inside it
            elif IMAGE_TO_IMAGE in wanted:
                done[IMAGE_TO_IMAGE] = first_image_hits
            timings["predict_category"] = elapsed_ms(t)

        if image_vec is not None:
            photo_steps = [(IMAGE_TO_IMAGE, image_vec), (IMAGE_TO_TEXT, image_vec)]
            if instance_vec is not None:
                photo_steps.insert(0, (IMAGE_INSTANCE, instance_vec))
            given = None if first_image_hits is None else {IMAGE_TO_IMAGE: first_image_hits}
            start_chain(photo_steps, image_flt, given)
        # The exact-match rule's searches run beside the legs, not after them.
        exact_jobs: dict[str, Future[list[Hit]]] = {}
        if photo is not None and profile.exact_match is not None:
            searches = self.whole_photo_searches(photo, image_flt, wanted, every_judge)
            exact_jobs = {leg: self.pool.submit(search) for leg, search in searches.items()}
        t = time.perf_counter()
        for job in jobs.values():
            done.update(job.result())
        timings["legs"] = elapsed_ms(t)
        whole = {leg: job.result() for leg, job in exact_jobs.items()}
        return {leg: done[leg] for leg in wanted if leg in done}, predicted, whole

    def whole_photo_searches(
        self,
        photo: PhotoVectors,
        flt: SearchFilter,
        wanted: Sequence[str],
        every_judge: bool = False,
    ) -> dict[str, Callable[[], list[Hit]]]:
        """For the image leg the exact-match rule judges by (``ranking.judge_leg``; with
        ``every_judge``, each image leg that runs), the points nearest the whole photo.

        The legs search with the views' mean, which never reaches cosine 1 for the very catalog
        shot and may even miss it; the exact-match rule asks "is this very photo in the
        catalog?", which the whole photo's nearest neighbours answer. Offline re-fusion asks
        for both judges, so that under other weights it judges as the service would.
        """
        out: dict[str, Callable[[], list[Hit]]] = {}
        whole_instance = photo.whole_instance
        judges = {IMAGE_INSTANCE, IMAGE_TO_IMAGE} if every_judge else {judge_leg(wanted)}
        if IMAGE_INSTANCE in wanted and IMAGE_INSTANCE in judges and whole_instance is not None:
            out[IMAGE_INSTANCE] = lambda: legs.image_instance(
                self.store, whole_instance, EXACT_CHECKED, flt, None, EXACT_CHECK_EF
            )
        if IMAGE_TO_IMAGE in wanted and IMAGE_TO_IMAGE in judges:
            out[IMAGE_TO_IMAGE] = lambda: legs.image_to_image(
                self.store, photo.whole_image, EXACT_CHECKED, flt, None
            )
        return out
