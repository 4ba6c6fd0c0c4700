"""The search service itself: query checks, which legs run, paging, grouping, explain, filters,
exact match, recommendations; over a real EdgeStore and the fake encoder (no model bundle).

The catalog is synthetic and small: a dozen products with made-up titles, prices, colours and
random-pattern photos, one product with two photos (the second its mirror image).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from app.profiles.model import FusionProfile, FusionSpec
from app.profiles.repository import ProfileRepository
from app.search.errors import NotFoundError, QueryError
from app.search.leg_names import (
    BM25,
    IMAGE_INSTANCE,
    IMAGE_LEGS,
    LEGS,
    TEXT_LEGS,
    TEXT_TO_IMAGE,
    TEXT_TO_TEXT,
)
from app.search.query import SearchQuery
from app.search.schemas import Crop, Filters, SearchBody
from app.search.service import SearchService
from app.store import DenseQuery, EdgeStore, Hit, StoreQuery
from ingestion.pipeline import ingest_catalog
from tests.fakes import FakeEncoder

PRODUCTS = [  # id, title, category, price, colour
    ("shirt-1", "Blue cotton shirt", "Apparel/Topwear/Shirts", 20, "Blue"),
    ("shirt-2", "Red linen shirt", "Apparel/Topwear/Shirts", 35, "Red"),
    ("shirt-3", "Green flannel shirt", "Apparel/Topwear/Shirts", 28, "Green"),
    ("jeans-1", "Blue denim jeans", "Apparel/Bottomwear/Jeans", 50, "Blue"),
    ("jeans-2", "Black slim jeans", "Apparel/Bottomwear/Jeans", 45, "Black"),
    ("watch-1", "Steel chronograph watch", "Accessories/Watches", 120, "Silver"),
    ("watch-2", "Gold dress watch", "Accessories/Watches", 150, "Gold"),
    ("juice-1", "Green apple juice", "Grocery/Beverages/Juice", 3, "Green"),
    ("juice-2", "Orange juice carton", "Grocery/Beverages/Juice", 4, "Orange"),
    ("tea-1", "Black tea leaves", "Grocery/Beverages/Tea", 6, "Black"),
    ("apples", "Red apples bag", "Grocery/Fruits", 5, "Red"),
    ("pears", "Green pears box", "Grocery/Fruits", 7, "Green"),
]
MAX_K, MAX_WINDOW = 20, 40


def _pattern(seed: int) -> Image.Image:
    """A 64x64 photo of random 8x8 colour blocks: every product's looks different."""
    blocks = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((64, 64), Image.Resampling.NEAREST)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("service_catalog")
    (root / "images").mkdir()
    rows = []
    for i, (pid, title, category, price, colour) in enumerate(PRODUCTS):
        _pattern(i).save(root / "images" / f"{pid}.png")
        rows.append(
            {
                "product_id": pid,
                "title": title,
                "category": category,
                "price": str(price),
                "color": colour,
                "image_files": f"{pid}.png",
            }
        )
    ImageOps.mirror(_pattern(0)).save(root / "images" / "shirt-1-back.png")
    rows[0]["image_files"] = "shirt-1.png;shirt-1-back.png"
    with (root / "products.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


class SpyStore:
    """The real store, recording which vector (or BM25) each search used."""

    def __init__(self, store: EdgeStore) -> None:
        self._store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def search_dense(self, vector: np.ndarray, limit: int, flt: Any, **kw: Any) -> list[Hit]:
        self.calls.append(kw["using"])
        return self._store.search_dense(vector, limit, flt, **kw)

    def search_bm25(self, text: str, limit: int, flt: Any, **kw: Any) -> list[Hit]:
        self.calls.append("bm25")
        return self._store.search_bm25(text, limit, flt, **kw)

    def search_batch(self, queries: Sequence[StoreQuery]) -> list[list[Hit]]:
        self.calls += [q.using if isinstance(q, DenseQuery) else "bm25" for q in queries]
        return self._store.search_batch(queries)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, catalog: Path) -> Iterator[SpyStore]:
    edge = EdgeStore(tmp_path_factory.mktemp("service_store") / "qdrant")
    report = ingest_catalog(catalog, edge, FakeEncoder())
    assert report.products == len(PRODUCTS) and report.images == len(PRODUCTS) + 1
    yield SpyStore(edge)
    edge.close()


@pytest.fixture(scope="module")
def service(store: SpyStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchService]:
    repo = ProfileRepository(tmp_path_factory.mktemp("service_profiles") / "profiles.sqlite")
    svc = SearchService(
        store,  # type: ignore[arg-type]
        FakeEncoder(),
        profiles=repo,
        max_k=MAX_K,
        max_window=MAX_WINDOW,
    )
    yield svc
    svc.close()
    repo.close()


def _photo(catalog: Path, pid: str) -> bytes:
    return (catalog / "images" / f"{pid}.png").read_bytes()


def _ids(response: Any) -> list[str]:
    return [r.product_id for r in response.results]


# -- query checks ----------------------------------------------------------------------------

ALL_TEXT_OFF = FusionSpec(weights={TEXT_TO_IMAGE: 0, TEXT_TO_TEXT: 0, BM25: 0})


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (SearchQuery(), "give a text query (q), an image, or both"),
        (SearchQuery(text="   "), "give a text query (q), an image, or both"),
        (SearchQuery(text="x", k=0), f"k must be between 1 and {MAX_K}, got 0"),
        (SearchQuery(text="x", k=MAX_K + 1), f"k must be between 1 and {MAX_K}, got {MAX_K + 1}"),
        (
            SearchQuery(text="x", offset=-1),
            f"offset + k must be at most {MAX_WINDOW} (got -1 + 10)",
        ),
        (SearchQuery(text="x", k=10, offset=31), "(got 31 + 10); narrow the query with filters"),
        (
            SearchQuery(text="x", crop=Crop(x0=0, y0=0, x1=1, y1=1)),
            "crop applies to an image; none was sent",
        ),
        (SearchQuery(text="x", profile="nope"), "no fusion profile 'nope'"),
        (
            SearchQuery(text="x", category="Apparel", filters=Filters(category="Grocery")),
            "category and filters.category disagree; give one of them",
        ),
        (
            SearchQuery(text="x", filters=Filters(attributes={"color": " "})),
            "filters.attributes: names and values must not be empty",
        ),
        (
            SearchQuery(text="x", fusion=ALL_TEXT_OFF),
            "every leg this query can use (text_image, text_text, bm25) has weight 0",
        ),
        (SearchQuery(image=b"GIF89a-nope"), "the image could not be decoded"),
    ],
)
def test_bad_queries_raise_a_query_error_that_says_why(
    service: SearchService, query: SearchQuery, reason: str
) -> None:
    with pytest.raises(QueryError) as caught:
        service.search(query)
    assert reason in str(caught.value)


def test_the_page_is_checked_before_the_profile(service: SearchService) -> None:
    with pytest.raises(QueryError, match="k must be between"):
        service.search(SearchQuery(text="x", k=0, profile="nope"))


def test_without_a_repository_only_the_default_profile_exists(store: SpyStore) -> None:
    svc = SearchService(store, FakeEncoder())  # type: ignore[arg-type]
    try:
        assert svc.profile(None).name == "default"
        with pytest.raises(QueryError, match="this service has only 'default'"):
            svc.search(SearchQuery(text="shirt", profile="kw"))
    finally:
        svc.close()


def test_from_body_carries_every_field() -> None:
    body = SearchBody.model_validate(
        {"q": " shirt ", "k": 3, "offset": 2, "category": "Apparel", "explain": True,
         "group_by_product": False, "predict_category": True, "profile": "kw",
         "fusion": {"method": "dbsf"}, "crop": {"x0": 0, "y0": 0, "x1": 0.5, "y1": 1}}
    )  # fmt: skip
    query = SearchQuery.from_body(body, b"img")
    assert (query.text, query.image, query.k, query.offset) == ("shirt", b"img", 3, 2)
    assert (query.category, query.profile, query.explain) == ("Apparel", "kw", True)
    assert query.group_by_product is False and query.predict_category is True
    assert query.fusion is not None and query.fusion.method == "dbsf"
    assert query.crop == Crop(x0=0, y0=0, x1=0.5, y1=1)


# -- legs --------------------------------------------------------------------------------------

# This store's model has no instance embedding: its leg is skipped, never an error.
PLAIN_LEGS = [leg for leg in LEGS if leg != IMAGE_INSTANCE]
PLAIN_IMAGE_LEGS = [leg for leg in IMAGE_LEGS if leg != IMAGE_INSTANCE]


def test_the_inputs_choose_the_legs(service: SearchService, catalog: Path) -> None:
    photo = _photo(catalog, "watch-1")
    assert service.search(SearchQuery(text="shirt")).legs == list(TEXT_LEGS)
    assert service.search(SearchQuery(image=photo)).legs == PLAIN_IMAGE_LEGS
    both = service.search(SearchQuery(text="shirt", image=photo))
    assert both.legs == PLAIN_LEGS
    for stage in ("decode", "embed_image", "embed_text", "legs", "fusion", "total"):
        assert both.timings_ms[stage] >= 0, stage
    assert all(both.timings_ms[f"leg_{leg}"] >= 0 for leg in PLAIN_LEGS)


def test_a_leg_with_weight_0_is_not_run(service: SearchService, store: SpyStore) -> None:
    store.calls.clear()
    off = service.search(SearchQuery(text="shirt", fusion=FusionSpec(weights={BM25: 0})))
    assert off.legs == [TEXT_TO_IMAGE, TEXT_TO_TEXT]
    assert "bm25" not in store.calls and "leg_bm25" not in off.timings_ms
    # text→image (with its text anchors, see legs.cross_modal), text→text
    assert sorted(set(store.calls)) == ["image", "text"]
    store.calls.clear()
    dense_off = FusionSpec(weights={TEXT_TO_IMAGE: 0, TEXT_TO_TEXT: 0})
    only_bm25 = service.search(SearchQuery(text="shirt", fusion=dense_off))
    assert only_bm25.legs == [BM25] and store.calls == ["bm25"]
    assert "embed_text" not in only_bm25.timings_ms  # no dense text leg: the text is not embedded


def test_leg_lists_runs_every_leg_the_inputs_allow(service: SearchService, catalog: Path) -> None:
    query = SearchQuery(
        text="shirt", image=_photo(catalog, "shirt-2"), fusion=FusionSpec(weights={BM25: 0})
    )
    lists, judged = service.leg_lists(query)
    assert list(lists) == PLAIN_LEGS
    assert all(len({key for key, _ in hits}) == len(hits) for hits in lists.values())
    # The exact-match rule's cosines: the whole photo against the image leg's first products,
    # its own shot at cosine 1.
    assert set(judged) == {"image"}
    assert judged["image"]["shirt-2"] == pytest.approx(1.0, abs=1e-5)
    assert set(judged["image"]) <= {key for key, _ in lists["image"]}


# -- paging, grouping, explain ---------------------------------------------------------------


def test_offset_pages_through_the_same_ranking(service: SearchService) -> None:
    full = _ids(service.search(SearchQuery(text="green shirt", k=12)))
    first = service.search(SearchQuery(text="green shirt", k=6))
    second = service.search(SearchQuery(text="green shirt", k=6, offset=6))
    assert len(full) == 12
    assert _ids(first) + _ids(second) == full
    assert second.offset == 6


def test_grouping_by_product_or_by_image(service: SearchService, catalog: Path) -> None:
    query = SearchQuery(image=_photo(catalog, "shirt-1"), k=MAX_K)
    grouped = service.search(query).results
    ids = [r.product_id for r in grouped]
    assert len(ids) == len(set(ids)) == len(PRODUCTS)
    mine = next(r for r in grouped if r.product_id == "shirt-1")
    assert sorted(mine.matched_images) == ["shirt-1-back.png", "shirt-1.png"]
    assert mine.image == mine.matched_images[0] == "shirt-1.png"  # the photographed one first
    assert mine.price == 20.0
    # Title and price come from the page's own payload fetch, not from the legs' hits.
    titles = {pid: title for pid, title, *_ in PRODUCTS}
    assert all(r.title == titles[r.product_id] and r.price is not None for r in grouped)
    flat = service.search(SearchQuery(image=_photo(catalog, "shirt-1"), k=MAX_K,
                                      group_by_product=False)).results  # fmt: skip
    assert len(flat) == len(PRODUCTS) + 1
    assert {r.image for r in flat if r.product_id == "shirt-1"} == {
        "shirt-1.png",
        "shirt-1-back.png",
    }


@pytest.mark.parametrize("method", ["rrf", "minmax", "zscore", "dbsf"])
def test_explain_contributions_add_up_to_the_score(
    service: SearchService, catalog: Path, method: str
) -> None:
    weights = {"bm25": 2.0, "image": 0.5}
    response = service.search(
        SearchQuery(
            text="black jeans",
            image=_photo(catalog, "jeans-2"),
            k=MAX_K,
            explain=True,
            fusion=FusionSpec(method=method, weights=weights),  # type: ignore[arg-type]
        )
    )
    assert response.results
    for r in response.results:
        assert r.explain is not None
        assert set(r.explain) == set(r.ranks)
        assert sum(p.contribution for p in r.explain.values()) == pytest.approx(r.score)
        assert all(p.rank == r.ranks[leg] for leg, p in r.explain.items())
    if method == "rrf":  # the formula itself: w / (60 + rank)
        first = response.results[0].explain
        assert first is not None
        for leg, p in first.items():
            assert p.contribution == pytest.approx(weights.get(leg, 1.0) / (60 + p.rank))
    plain = service.search(SearchQuery(text="black jeans"))
    assert all(r.explain is None for r in plain.results)  # only when asked for


# -- filters, floors, exact match, category prediction --------------------------------------


def test_filters_hold_on_every_leg(service: SearchService, catalog: Path) -> None:
    photo = _photo(catalog, "watch-1")
    priced = service.search(
        SearchQuery(text="shirt", image=photo, k=MAX_K, filters=Filters(price_min=5, price_max=40))
    )
    assert priced.results and all(5 <= (r.price or -1) <= 40 for r in priced.results)
    grocery = service.search(SearchQuery(text="green", image=photo, k=MAX_K, category="Grocery"))
    assert {r.product_id for r in grocery.results} == {
        pid for pid, _, cat, _, _ in PRODUCTS if cat.startswith("Grocery/")
    }
    coloured = service.search(
        SearchQuery(text="shirt", k=MAX_K, filters=Filters(attributes={"Color": "GREEN"}))
    )
    assert {r.product_id for r in coloured.results} == {"shirt-3", "juice-1", "pears"}
    nowhere = service.search(SearchQuery(text="shirt", category="Furniture/Chairs"))
    assert nowhere.results == []


def test_a_score_floor_drops_weak_hits(service: SearchService, catalog: Path) -> None:
    photo = _photo(catalog, "tea-1")
    plain = service.search(
        SearchQuery(
            image=photo, k=MAX_K, explain=True, fusion=FusionSpec(weights={"image_text": 0})
        )
    )
    scores = [r.explain["image"].score for r in plain.results if r.explain]
    assert plain.results[0].product_id == "tea-1" and len(scores) > 2
    # A floor between the best and the second-best image score keeps the best alone.
    floor = FusionSpec(weights={"image_text": 0}, floors={"image": (scores[0] + scores[1]) / 2})
    response = service.search(SearchQuery(image=photo, fusion=floor))
    assert _ids(response) == ["tea-1"]


def test_the_photographed_product_is_first_as_an_exact_match(
    service: SearchService, catalog: Path
) -> None:
    text_heavy = FusionSpec(weights={"bm25": 50})
    for pid in ("watch-1", "juice-2", "pears"):
        # "shirt" matches three other titles: BM25 alone would put a shirt first.
        query = SearchQuery(text="shirt", image=_photo(catalog, pid), fusion=text_heavy, k=5)
        results = service.search(query).results
        assert results[0].product_id == pid and results[0].exact_match is True
        assert not any(r.exact_match for r in results[1:])
    assert service.profiles is not None
    service.profiles.save(FusionProfile(name="no-exact", exact_match=None, weights={"bm25": 50}))
    off = service.search(
        SearchQuery(text="shirt", image=_photo(catalog, "watch-1"), profile="no-exact", k=5)
    )
    assert off.profile.name == "no-exact"
    assert not any(r.exact_match for r in off.results)


def test_predicted_category(service: SearchService, catalog: Path) -> None:
    photo = _photo(catalog, "jeans-1")
    on = service.search(SearchQuery(image=photo, predict_category=True, k=MAX_K))
    assert on.predicted_category is not None and 0 < on.predicted_category.confidence <= 1
    assert "predict_category" in on.timings_ms
    if on.predicted_category.applied:
        path = on.predicted_category.path
        assert all((r.category.lower() + "/").startswith(path + "/") for r in on.results)
    off = service.search(SearchQuery(image=photo, predict_category=False))
    assert off.predicted_category is None
    explicit = service.search(SearchQuery(image=photo, predict_category=True, category="Apparel"))
    assert explicit.predicted_category is None  # an explicit filter wins


# -- products and recommendations ------------------------------------------------------------


def test_product_and_not_found(service: SearchService) -> None:
    product = service.product("shirt-1")
    assert product.title == "Blue cotton shirt" and product.price == 20.0
    assert product.images == ["shirt-1.png", "shirt-1-back.png"]
    assert product.attributes["color"] == "Blue"
    with pytest.raises(NotFoundError, match="no product 'ghost' in the catalog"):
        service.product("ghost")


def test_similar_excludes_the_product_and_honours_filters(service: SearchService) -> None:
    similar = service.similar("watch-1", k=5)
    assert len(similar.results) == 5 and "watch-1" not in _ids(similar)
    assert similar.legs == ["image", "text_text"] and similar.fusion.method == "rrf"
    grocery = service.similar("watch-1", k=MAX_K, filters=Filters(category="Grocery"))
    assert grocery.results and all(r.category.startswith("Grocery") for r in grocery.results)
    with pytest.raises(NotFoundError):
        service.similar("ghost")
    with pytest.raises(QueryError, match="k must be between"):
        service.similar("watch-1", k=0)


def test_examples_exclude_themselves_and_check_their_inputs(service: SearchService) -> None:
    positive, negative = ["juice-1", "juice-2"], ["shirt-1"]
    found = service.examples(positive, negative, k=5)
    assert len(found.results) == 5
    assert not set(_ids(found)) & {*positive, *negative}
    with pytest.raises(QueryError, match="both positive and negative: juice-1"):
        service.examples(["juice-1"], ["juice-1"])
    with pytest.raises(NotFoundError, match="no product\\(s\\) 'ghost'"):
        service.examples(["ghost"])
