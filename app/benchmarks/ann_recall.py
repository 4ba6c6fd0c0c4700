"""ANN recall@10: what the engine's index returns against exact search, per dense leg.

``recall_at_10`` asks the index for 10 hits; ``recall_at_10_of_100`` takes the top 10 of the
100 candidates a leg really fetches, which is what fusion sees. Both are compared with the
exact top 10 (ties counted as found, see ``tie_aware_recall``); ``lowest`` is the worst query's,
and ``worst`` names the query the leg as served did worst on (its place among the benchmark's
typed or photo queries, and its filter), so a miss can be looked at again and compared across
builds.

The queries are the benchmark's own, embedded as the service embeds them (photo views and
all), so each leg is measured with the vectors it really searches with: typed queries against
the image and text vectors, photos against the image, text and instance vectors. Each query
runs unfiltered and with a category filter drawn from the catalog's category mix (a random
point's path, cut at a random depth), since filtered HNSW search is where recall usually drops.
``recall_curve`` repeats the float store's measurement at several search beams (``ef``): the
curve the default beam was chosen from. A quantised store is measured with rescoring on and
off; ``top1_score_gap_max`` (how far a top hit's score is from its float score) shows whether
int8 codes were searched at all.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from typing import Any

import numpy as np

from app.benchmarks.queries import PHOTO, TYPED, BenchQueries
from app.profiles.model import DEFAULT_PROFILE
from app.search.encode import QueryEmbedder, QueryEncoder
from app.search.leg_names import (
    IMAGE_INSTANCE,
    IMAGE_TO_IMAGE,
    IMAGE_TO_TEXT,
    TEXT_TO_IMAGE,
    TEXT_TO_TEXT,
)
from app.search.running import ANCHORED_BY, DENSE_LEGS
from app.store import (
    IMAGE_VECTOR,
    INSTANCE_VECTOR,
    TEXT_VECTOR,
    EdgeStore,
    Hit,
    SearchFilter,
)

K = 10
# What the legs fetch per query (the default profile's candidates): the engine searches at
# least that wide, and an int8 store rescores twice that many, so the top 10 may differ.
SERVED_LIMIT = DEFAULT_PROFILE.candidates
TIE = 1e-6  # scores this close are the same point twice, not a better and a worse one
# leg -> (which query vector, which stored vector)
LEG_VECTORS = {
    TEXT_TO_IMAGE: ("text", IMAGE_VECTOR),
    TEXT_TO_TEXT: ("text", TEXT_VECTOR),
    IMAGE_TO_IMAGE: ("image", IMAGE_VECTOR),
    IMAGE_TO_TEXT: ("image", TEXT_VECTOR),
    IMAGE_INSTANCE: ("instance", INSTANCE_VECTOR),
}


def anchors_as_served(
    store: EdgeStore, leg: str, query: dict[str, np.ndarray], flt: SearchFilter | None
) -> list[Hit] | None:
    """The hits that anchor ``leg`` when the service runs every leg unfloored
    (``running.ANCHORED_BY``): the leg before it, itself anchored the same way; None when no
    leg anchors it here (the store or the model lacks the anchoring leg's vectors)."""
    before = ANCHORED_BY.get(leg)
    if before is None:
        return None
    kind, using = LEG_VECTORS[before]
    if kind not in query or using not in store.dense_vectors():
        return None
    return leg_as_served(store, before, query, flt, anchors_as_served(store, before, query, flt))


def leg_as_served(
    store: EdgeStore,
    leg: str,
    query: dict[str, np.ndarray],
    flt: SearchFilter | None,
    anchors: Sequence[Hit] | None,
) -> list[Hit]:
    """``leg``'s ``SERVED_LIMIT`` hits for one query (its vector of each kind) as the service
    searches them, given the hits that anchor it (``anchors_as_served``)."""
    search = DENSE_LEGS[leg]
    vec = query[LEG_VECTORS[leg][0]]
    if anchors is None:
        return search(store, vec, SERVED_LIMIT, flt, None)
    return search(store, vec, SERVED_LIMIT, flt, None, anchors=anchors)


def query_vectors(encoder: QueryEncoder, queries: BenchQueries, n: int) -> dict[str, np.ndarray]:
    """Up to ``n`` distinct typed queries and photos as the service embeds them."""
    embedder = QueryEmbedder(encoder)
    try:
        text = [embedder.text(r.text or "", {}) for r in queries.requests[TYPED][:n]]
        photos = [
            embedder.photo(r.image, None, {})
            for r in queries.requests[PHOTO][:n]
            if r.image is not None
        ]
    finally:
        embedder.close()
    out = {"text": np.stack(text), "image": np.stack([p.image for p in photos])}
    instances = [p.instance for p in photos if p.instance is not None]
    if instances:
        out["instance"] = np.stack(instances)
    return out


def category_filters(
    payloads: Sequence[dict[str, Any]], n: int, seed: int = 0
) -> list[SearchFilter]:
    """``n`` category filters in the catalog's mix: a random point's path at a random depth."""
    rng = random.Random(seed)
    paths = [list(p.get("category") or []) for p in payloads]
    paths = [p for p in paths if p]
    if not paths:
        return []
    return [SearchFilter(category=rng.choice(rng.choice(paths))) for _ in range(n)]


def _ms(t: float) -> float:
    return (time.perf_counter() - t) * 1000


def tie_aware_recall(exact: Sequence[Hit], got: Sequence[Hit], exact_scores: bool) -> float:
    """Share of the exact top ``K`` that ``got`` holds. Points with the same vector (a catalog
    photo used twice, one text for two products) tie: where ``got``'s scores are the float
    ones, a hit scoring at least the exact 10th counts too, whichever of the tied it is."""
    truth = {h.id for h in exact}
    kth = exact[-1].score - TIE
    right = sum(1 for h in got if h.id in truth or (exact_scores and h.score >= kth))
    return min(right, len(truth)) / len(truth)


def _cases(
    store: EdgeStore, vectors: dict[str, np.ndarray], filters: Sequence[SearchFilter]
) -> Iterator[tuple[str, str, bool, int, dict[str, np.ndarray], SearchFilter | None]]:
    """What recall is measured on: (leg, stored vector, filtered, query's place, the query's
    vector of each kind, filter) for each query of the leg's kind, unfiltered, then with the
    filters in turn."""
    for leg, (kind, using) in LEG_VECTORS.items():
        if kind not in vectors or using not in store.dense_vectors():
            continue
        for filtered in (False, True):
            if filtered and not filters:
                continue
            for i in range(len(vectors[kind])):
                # A photo's place is the same in its image and instance vectors (typed queries
                # have only text ones), so its legs' anchors come from the same photo.
                query = {k: v[i] for k, v in vectors.items() if i < len(v)}
                yield (
                    leg,
                    using,
                    filtered,
                    i,
                    query,
                    filters[i % len(filters)] if filtered else None,
                )


def measure_recall(
    store: EdgeStore,
    vectors: dict[str, np.ndarray],
    filters: Sequence[SearchFilter],
    rescore: bool | None = None,
) -> dict[str, Any]:
    """Per leg, unfiltered and filtered: mean and lowest recall@10, and each search's ms."""
    total = store.count()
    # (leg, filtered) -> recalls, served recalls, ANN ms, exact ms
    groups: dict[tuple[str, bool], tuple[list[float], ...]] = {}
    # (leg, filtered) -> (served recall, the query's place, its filter) of the worst query
    worst_of: dict[tuple[str, bool], tuple[float, int, SearchFilter | None]] = {}
    # How far the scores without rescoring are from the float ones: 0 means the engine has no
    # int8 codes to search (segments below the indexing threshold keep only the originals).
    gap = 0.0
    legs: dict[str, Any] = {}
    for leg, using, filtered, place, query, flt in _cases(store, vectors, filters):
        vec = query[LEG_VECTORS[leg][0]]
        legs.setdefault(leg, {})
        recalls, served, ann_ms, exact_ms = groups.setdefault((leg, filtered), ([], [], [], []))
        t = time.perf_counter()
        exact = store.search_dense_with(vec, K, flt, using, exact=True)
        exact_ms.append(_ms(t))
        t = time.perf_counter()
        got = store.search_dense_with(vec, K, flt, using, rescore=rescore)
        ann_ms.append(_ms(t))
        if rescore is False:  # codes only: no leg searches like that
            wide = store.search_dense_with(vec, SERVED_LIMIT, flt, using, rescore=False)
        else:
            wide = leg_as_served(store, leg, query, flt, anchors_as_served(store, leg, query, flt))
        if exact:
            recalls.append(tie_aware_recall(exact, got, exact_scores=rescore is not False))
            served.append(tie_aware_recall(exact, wide[:K], exact_scores=rescore is not False))
            known = worst_of.get((leg, filtered))
            if known is None or served[-1] < known[0]:
                worst_of[(leg, filtered)] = (served[-1], place, flt)
        if exact and got and got[0].id == exact[0].id:
            gap = max(gap, abs(got[0].score - exact[0].score))
    worst = 1.0
    for (leg, filtered), (recalls, served, ann_ms, exact_ms) in groups.items():
        if not recalls:
            continue
        worst = min(worst, float(np.mean(recalls)))
        legs[leg]["filtered" if filtered else "unfiltered"] = {
            "queries": len(recalls),
            "recall_at_10": round(float(np.mean(recalls)), 4),
            "lowest": round(float(np.min(recalls)), 4),
            f"recall_at_10_of_{SERVED_LIMIT}": round(float(np.mean(served)), 4),
            "ann_ms_p50": round(float(np.median(ann_ms)), 3),
            "exact_ms_p50": round(float(np.median(exact_ms)), 3),
            "worst": _worst(worst_of[(leg, filtered)]),
        }
    shares = [store.count(f) / total for f in filters] if total else []
    return {
        "k": K,
        "rescore": rescore,
        "min_recall_at_10": round(worst, 4),
        "top1_score_gap_max": round(gap, 6),
        "filter_share_median": round(float(np.median(shares)), 4) if shares else None,
        "legs": legs,
    }


def _worst(case: tuple[float, int, SearchFilter | None]) -> dict[str, Any]:
    """The worst query as served: its recall, place among the benchmark's queries, filter."""
    recall, place, flt = case
    return {
        f"recall_at_10_of_{SERVED_LIMIT}": round(recall, 4),
        "query": place,
        "category": flt.category if flt is not None else None,
    }


# Search beams of the recall curve: below, at and above the default (HnswOptions.ef).
CURVE_EFS = (64, 128, 256, 384, 512, 1024)


def recall_curve(
    open_at: Callable[[int], EdgeStore],
    vectors: dict[str, np.ndarray],
    filters: Sequence[SearchFilter],
    efs: Sequence[int] = CURVE_EFS,
) -> dict[str, Any]:
    """Per search beam (``open_at(ef)`` opens the store searching with it): the worst leg's mean
    recall@10 of what the leg, as served, fetches (unfiltered or filtered), the worst single
    query's, and the median ms of one leg."""
    cases: list[tuple[str, str, dict[str, np.ndarray], SearchFilter | None, list[Hit]]] = []
    out: dict[str, Any] = {}
    for ef in efs:
        with closing(open_at(ef)) as store:
            if not cases:  # the exact answers, once: they do not depend on the beam
                for leg, using, filtered, _, query, flt in _cases(store, vectors, filters):
                    vec = query[LEG_VECTORS[leg][0]]
                    exact = store.search_dense_with(vec, K, flt, using, exact=True)
                    if exact:
                        cases.append((leg, f"{leg}/{filtered}", query, flt, exact))
            groups: dict[str, list[float]] = {}
            ms: list[float] = []
            for leg, group, query, flt, exact in cases:
                anchors = anchors_as_served(store, leg, query, flt)  # other legs: not timed
                t = time.perf_counter()
                got = leg_as_served(store, leg, query, flt, anchors)
                ms.append(_ms(t))
                groups.setdefault(group, []).append(tie_aware_recall(exact, got[:K], True))
        means = {group: float(np.mean(r)) for group, r in groups.items()}
        out[str(ef)] = {
            "min_recall_at_10": round(min(means.values()), 4) if means else None,
            "lowest_query": round(min(min(r) for r in groups.values()), 2) if groups else None,
            "ms_p50": round(float(np.median(ms)), 3) if ms else None,
            # Each leg's mean ("<leg>/<filtered>"): where one beam would do for some legs.
            "legs": {group: round(mean, 4) for group, mean in means.items()},
        }
    return out
