"""Anchored legs: the cross-modal legs (by the query's own tower) and the photo leg (by the
identity leg's hits) find what a lost HNSW walk misses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.search import legs
from app.store import (
    IMAGE_VECTOR,
    INSTANCE_VECTOR,
    TEXT_VECTOR,
    DenseQuery,
    Hit,
    SearchFilter,
    StoreQuery,
)
from app.store.fields import CATEGORY_PATH, PRODUCT_ID


def _hit(pid: str, score: float, path: str) -> Hit:
    return Hit(id=f"pt-{pid}", score=score, payload={PRODUCT_ID: pid, CATEGORY_PATH: path})


class LostWalkStore:
    """A store whose unfiltered text-vector search is stuck among clothes (as HNSW's walk was
    for a grocery photo at 100k products), while its photo search and its searches inside a
    category find the right points. Records every query it gets."""

    def __init__(self) -> None:
        self.queries: list[DenseQuery] = []

    def scans(self, flt: SearchFilter | None, using: str) -> bool:
        return False  # every search walks the graph

    def search_batch(self, queries: Sequence[StoreQuery]) -> list[list[Hit]]:
        out = []
        for q in queries:
            assert isinstance(q, DenseQuery)
            self.queries.append(q)
            category = q.flt.category if q.flt else None
            if q.using == IMAGE_VECTOR:  # the photo's own tower: reliable
                hits = [_hit("milk-1", 0.9, "Grocery/Dairy"), _hit("shirt-9", 0.5, "Apparel/Top")]
            elif category == "grocery":
                hits = [_hit("milk-1", 0.55, "Grocery/Dairy"), _hit("milk-2", 0.53, "Grocery/D")]
            elif category == "apparel":
                hits = [_hit("shirt-1", 0.15, "Apparel/Top"), _hit("shirt-2", 0.14, "Apparel/T")]
            else:  # unfiltered: the walk never left the clothes
                hits = [_hit("shirt-1", 0.15, "Apparel/Top"), _hit("shirt-3", 0.12, "Apparel/T")]
            out.append(hits[: q.limit])
        return out


def test_a_lost_cross_modal_walk_is_rescued_by_the_anchors_categories() -> None:
    store = LostWalkStore()
    vec = np.ones(4, dtype=np.float32)
    hits = legs.image_to_text(store, vec, 3, None)  # type: ignore[arg-type]
    # The grocery points the unfiltered walk missed come first; each point once, best first.
    assert [h.payload[PRODUCT_ID] for h in hits] == ["milk-1", "milk-2", "shirt-1"]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # The anchors are the photo's nearest catalog photos (in the leg's own engine call); one
    # extra search runs, inside the anchors' category that the leg's hits lack.
    anchors = [q for q in store.queries if q.using == IMAGE_VECTOR]
    assert len(anchors) == 1 and anchors[0].limit == legs.ANCHORS
    inside = [q.flt.category for q in store.queries if q.using == TEXT_VECTOR and q.flt.category]
    assert inside == ["grocery"]


def test_a_walk_that_found_the_anchors_categories_costs_one_engine_call() -> None:
    store = LostWalkStore()
    calls: list[int] = []
    batch = store.search_batch
    store.search_batch = lambda qs: calls.append(len(qs)) or batch(qs)  # type: ignore[method-assign]
    # A typed query: its anchors (text vectors, stuck or not) name clothes, which the leg's
    # own hits (photos: milk and a shirt) already hold.
    hits = legs.text_to_image(store, np.ones(4, dtype=np.float32), 5, None)  # type: ignore[arg-type]
    assert [h.payload[PRODUCT_ID] for h in hits] == ["milk-1", "shirt-9"]
    assert calls == [2] and store.queries[1].using == TEXT_VECTOR


class ScanningStore(LostWalkStore):
    """The same answers, but its filtered searches scan the matches exactly."""

    def scans(self, flt: SearchFilter | None, using: str) -> bool:
        return flt is not None and not flt.empty


def test_a_scanned_filter_needs_no_anchors_and_no_searches_inside_categories() -> None:
    store = ScanningStore()
    vec = np.ones(4, dtype=np.float32)
    hits = legs.image_to_text(store, vec, 3, SearchFilter(category="grocery"))  # type: ignore[arg-type]
    assert [h.payload[PRODUCT_ID] for h in hits] == ["milk-1", "milk-2"]
    assert [(q.using, q.flt.category if q.flt else None) for q in store.queries] == [
        (TEXT_VECTOR, "grocery")
    ]
    # Unfiltered, the walk may still go astray: the anchors are searched as before.
    legs.image_to_text(store, vec, 3, None)  # type: ignore[arg-type]
    assert [q.using for q in store.queries[1:3]] == [TEXT_VECTOR, IMAGE_VECTOR]


class LostInsideStore(LostWalkStore):
    """Inside Grocery, the text walk is stuck among dairy while the photo is of fruit."""

    def search_batch(self, queries: Sequence[StoreQuery]) -> list[list[Hit]]:
        out = []
        for q in queries:
            assert isinstance(q, DenseQuery) and q.flt is not None
            self.queries.append(q)
            if q.using == IMAGE_VECTOR:
                hits = [_hit("apple-1", 0.9, "Grocery/Fruit"), _hit("milk-1", 0.6, "Grocery/Dairy")]
            elif q.flt.category == "grocery/fruit":
                hits = [_hit("apple-1", 0.5, "Grocery/Fruit")]
            else:
                hits = [_hit("milk-1", 0.2, "Grocery/Dairy"), _hit("milk-2", 0.1, "Grocery/Dairy")]
            out.append(hits[: q.limit])
        return out


def test_inside_a_filtered_category_the_anchors_name_the_level_below() -> None:
    store = LostInsideStore()
    flt = SearchFilter(category="Grocery", price_max=5.0)
    hits = legs.image_to_text(store, np.ones(4, dtype=np.float32), 5, flt)  # type: ignore[arg-type]
    assert [h.payload[PRODUCT_ID] for h in hits] == ["apple-1", "milk-1", "milk-2"]
    inside = store.queries[2]
    assert inside.flt is not None and (inside.flt.category, inside.flt.price_max) == (
        "grocery/fruit",
        5.0,
    )


def test_a_walk_inside_a_leaf_category_has_no_level_below_to_search() -> None:
    store = LostInsideStore()
    flt = SearchFilter(category="Grocery/Dairy")
    legs.image_to_text(store, np.ones(4, dtype=np.float32), 5, flt)  # type: ignore[arg-type]
    assert len(store.queries) == 2  # the leg and its anchors, in one call


def test_the_extra_searches_keep_the_requests_other_restrictions() -> None:
    store = LostWalkStore()
    flt = SearchFilter(price_max=5.0, exclude_products=("milk-9",))
    legs.image_to_text(store, np.ones(4, dtype=np.float32), 3, flt, 0.1)  # type: ignore[arg-type]
    assert len(store.queries) == 3
    for q in store.queries:
        assert q.flt is not None
        assert (q.flt.price_max, q.flt.exclude_products) == (5.0, ("milk-9",))
    # The floor applies to the leg's own searches, not to the anchors (they only vote).
    assert [q.min_score for q in store.queries] == [0.1, None, 0.1]


class LostPhotoWalkStore(LostWalkStore):
    """Its unfiltered photo-vector walk is stuck among ten shirts (as three grocery photos'
    walks were at 1M products); inside a category, the photo vectors are walked right.
    ``photos``: the stored photo vectors the anchors are scored with."""

    def __init__(self, photos: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.photos = photos
        self.read: list[tuple[list[str], tuple[str, ...]]] = []

    def search_batch(self, queries: Sequence[StoreQuery]) -> list[list[Hit]]:
        out = []
        for q in queries:
            assert isinstance(q, DenseQuery) and q.using == IMAGE_VECTOR
            self.queries.append(q)
            category = q.flt.category if q.flt else None
            if category == "grocery":
                hits = [_hit("milk-1", 0.9, "Grocery/Dairy"), _hit("milk-2", 0.8, "Grocery/D")]
            else:
                hits = [_hit(f"shirt-{i}", 0.3 - i / 100, "Apparel/Top") for i in range(10)]
            out.append(hits[: q.limit])
        return out

    def vectors(self, ids: Sequence[str], using: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.read.append((list(ids), tuple(using)))
        return {i: {IMAGE_VECTOR: self.photos[i]} for i in ids if i in self.photos}


QUERY = np.ones(4, dtype=np.float32)
# The identity leg's first hits for a photo of milk: its own graph's walk went right.
IDENTITY = [_hit("milk-1", 0.95, "Grocery/Dairy"), _hit("milk-3", 0.7, "Grocery/Dairy")]
# Their stored photos: like the query's (cosine 1), far above the shirts' 0.21 at 10th place.
ALIKE = {"pt-milk-1": QUERY.copy(), "pt-milk-3": QUERY.copy()}
# Photos unlike the query's (cosine -0.5): the identity vectors disagree with the image ones.
UNLIKE = {p: np.array([1, -1, -1, -1], dtype=np.float32) for p in ("pt-milk-1", "pt-milk-3")}


def _ids(hits: Sequence[Hit]) -> list[str]:
    return [h.payload[PRODUCT_ID] for h in hits]


def test_the_photo_leg_searches_where_an_identity_anchor_proves_its_walk_missed() -> None:
    store = LostPhotoWalkStore(ALIKE)
    hits = legs.image_to_image(store, QUERY, 10, None, anchors=IDENTITY)  # type: ignore[arg-type]
    assert _ids(hits)[:3] == ["milk-1", "milk-2", "shirt-0"] and len(hits) == 10
    # The anchors are given, so no search for them: the leg's walk, then one inside Grocery.
    assert [q.flt.category if q.flt else None for q in store.queries] == [None, "grocery"]
    assert all(q.using == IMAGE_VECTOR for q in store.queries)
    # Only the anchors' photo vectors are read, once.
    assert store.read == [(["pt-milk-1", "pt-milk-3"], (IMAGE_VECTOR,))]


def test_a_category_the_anchors_only_name_is_not_searched() -> None:
    store = LostPhotoWalkStore(UNLIKE)
    hits = legs.image_to_image(store, QUERY, 10, None, anchors=IDENTITY)  # type: ignore[arg-type]
    assert _ids(hits) == [f"shirt-{i}" for i in range(10)]
    assert len(store.queries) == 1 and len(store.read) == 1


def test_the_photo_leg_without_anchors_is_its_one_walk() -> None:
    store = LostPhotoWalkStore(ALIKE)
    hits = legs.image_to_image(store, QUERY, 3, None)  # type: ignore[arg-type]
    assert _ids(hits) == ["shirt-0", "shirt-1", "shirt-2"]
    assert len(store.queries) == 1 and store.read == []


def test_anchors_in_categories_the_walk_reached_are_not_even_scored() -> None:
    store = LostPhotoWalkStore({"pt-shirt-99": QUERY.copy()})
    # A shirt the walk did not return, but the walk is among shirts: no category to search.
    shirts = [_hit("shirt-0", 0.3, "Apparel/Top"), _hit("shirt-99", 0.3, "Apparel/Top")]
    legs.image_to_image(store, QUERY, 10, None, anchors=shirts)  # type: ignore[arg-type]
    assert len(store.queries) == 1 and store.read == []


def test_the_photo_leg_under_a_scanned_filter_is_exact_and_needs_no_anchors() -> None:
    store = LostPhotoWalkStore(ALIKE)
    store.scans = lambda flt, using: True  # type: ignore[method-assign]
    flt = SearchFilter(price_max=5.0)
    hits = legs.image_to_image(store, QUERY, 3, flt, anchors=IDENTITY)  # type: ignore[arg-type]
    assert _ids(hits) == ["shirt-0", "shirt-1", "shirt-2"]
    assert len(store.queries) == 1 and store.read == []


def test_the_photo_leg_floor_applies_inside_the_anchors_categories() -> None:
    store = LostPhotoWalkStore(ALIKE)
    flt = SearchFilter(price_max=5.0)
    legs.image_to_image(store, QUERY, 10, flt, 0.2, anchors=IDENTITY)  # type: ignore[arg-type]
    assert [q.min_score for q in store.queries] == [0.2, 0.2]
    inside = store.queries[1].flt
    assert inside is not None and (inside.category, inside.price_max) == ("grocery", 5.0)
    assert INSTANCE_VECTOR not in {q.using for q in store.queries}


def test_outscoring_bars_at_the_tenth_hit_or_else_the_floor() -> None:
    store = LostPhotoWalkStore({"a": QUERY.copy(), "b": -QUERY})
    points = [_hit("x", 0.0, "G"), Hit(id="a", score=0.0, payload={}), Hit("b", 0.0, {})]
    ten = [Hit(id=f"h{i}", score=0.9 - i / 100, payload={}) for i in range(10)]
    # Cosine 1 beats the 10th hit's 0.81; cosine -1 does not; an unknown point is skipped.
    assert [p.id for p in legs.outscoring(store, QUERY, IMAGE_VECTOR, ten, points, None)] == ["a"]  # type: ignore[arg-type]
    # With fewer than 10 hits, the floor is the bar (none: any point not found counts).
    few = ten[:3]
    assert [p.id for p in legs.outscoring(store, QUERY, IMAGE_VECTOR, few, points, None)] == [
        "a",
        "b",
    ]  # type: ignore[arg-type]
    assert [p.id for p in legs.outscoring(store, QUERY, IMAGE_VECTOR, few, points, 0.5)] == ["a"]  # type: ignore[arg-type]
    # Points among the hits are found, whatever they score.
    assert legs.outscoring(store, QUERY, IMAGE_VECTOR, [*ten, points[1]], points[1:2], None) == []  # type: ignore[arg-type]
