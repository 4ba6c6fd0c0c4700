"""Congruence: the same points and the same queries through the embedded engine (qdrant-edge) and
through qdrant-client (its local mode standing in for a server) give the same answers.

Small collections (below the indexing threshold) are searched exactly by both, so the top-k
must agree, ties allowed (``tests/store/congruence.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.store import (
    IMAGE_VECTOR,
    INSTANCE_VECTOR,
    TEXT_VECTOR,
    DenseQuery,
    EdgeStore,
    Hit,
    KeywordQuery,
    PointRecord,
    QdrantServerStore,
    SearchFilter,
    VectorStore,
    attribute_term,
    category_ancestors,
    point_id,
)
from app.store.fields import HIT_FIELDS, SYNC_FIELDS
from app.store.server import ServerOptions
from tests.store.congruence import assert_same_hits

DIM = 12
INSTANCE_DIM = 6
CATEGORIES = [
    "Apparel/Topwear/Shirts",
    "Apparel/Topwear/Tshirts",
    "Apparel/Bottomwear/Jeans",
    "Grocery/Fruit/Apple",
    "Grocery/Drinks/Juice",
]
WORDS = [
    "red cotton shirt",
    "blue slim tshirt",
    "dark denim jeans",
    "fresh red apple",
    "orange juice bottle",
]
COLOURS = ["red", "blue", "black", "green"]
PRODUCTS = 36


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=n).astype(np.float32)
    return v / np.linalg.norm(v)


def _catalog(seed: int = 7) -> list[PointRecord]:
    """36 products with 1-3 images each: categories, prices, attributes and texts that overlap
    (so filters, BM25 IDF and ties all have something to do)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(PRODUCTS):
        c = i % len(CATEGORIES)
        pid = f"p{i:02d}"
        images = [f"{pid}-{j}.jpg" for j in range(1 + i % 3)]
        colour = COLOURS[i % len(COLOURS)]
        text = f"{WORDS[c]} {colour} item{i % 7} " + ("sale " * (i % 4))
        text_vec = _unit(rng, DIM)  # one per product, as ingestion makes it
        for name in images:
            payload = {
                "product_id": pid,
                "title": f"{WORDS[c].title()} {i}",
                "category": category_ancestors(CATEGORIES[c]),
                "category_path": CATEGORIES[c],
                "description": f"a long description of product {i} " * 5,
                "image_file": name,
                "image_path": f"/catalog/images/{name}",
                "images": images,
                "attributes": {"colour": colour},
                "attribute_terms": [attribute_term("colour", colour)],
                "price": float(5 + (i * 7) % 60),
                "year": 2015 + i % 8,
                "content_hash": f"h{i}",
            }
            out.append(
                PointRecord(
                    id=point_id(pid, name),
                    image_vector=_unit(rng, DIM),
                    text_vector=text_vec,
                    text=text.strip(),
                    payload=payload,
                    instance_vector=_unit(rng, INSTANCE_DIM),
                )
            )
    return out


RECORDS = _catalog()
CORPUS = [r.text for r in RECORDS]


def _fill(store: VectorStore) -> VectorStore:
    store.ensure_collection(DIM, "congruence-model", CORPUS, INSTANCE_DIM)
    half = len(RECORDS) // 2
    store.upsert(RECORDS[:half])
    store.write(RECORDS[half:], ())
    return store


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VectorStore, VectorStore]]:
    root = tmp_path_factory.mktemp("congruence")
    edge = _fill(EdgeStore(root / "edge"))
    server = _fill(QdrantServerStore.at_path(root / "local", ServerOptions(collection="shop")))
    yield edge, server
    edge.close()
    server.close()


def _probes(seed: int, n: int, dim: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [_unit(rng, dim) for _ in range(n)]


FILTERS = [
    None,
    SearchFilter(category="Apparel"),
    SearchFilter(category="apparel/topwear"),
    SearchFilter(category="Grocery/Fruit/Apple"),
    SearchFilter(category="Apparel/Top"),  # a prefix of a segment is no category: nothing
    SearchFilter(price_min=20.0, price_max=45.0),
    SearchFilter(price_max=12.0),
    SearchFilter(attributes=(("Colour", "RED"),)),
    SearchFilter(exclude_products=("p00", "p01", "p05", "p13")),
    SearchFilter(category="Apparel", price_min=10.0, attributes=(("colour", "blue"),)),
]


def test_both_backends_report_the_same_collection(stores: tuple[VectorStore, VectorStore]) -> None:
    edge, server = stores
    assert edge.count() == server.count() == len(RECORDS)
    assert edge.dense_vectors() == server.dense_vectors()
    assert INSTANCE_VECTOR in server.dense_vectors()
    e, s = edge.info(), server.info()
    assert (e.points, e.dim, e.model_id) == (s.points, s.dim, s.model_id)
    assert e.extra["bm25_avg_len"] == pytest.approx(s.extra["bm25_avg_len"])
    assert s.backend == "qdrant-local" and e.backend == "qdrant-edge"
    assert edge.index_status().state == server.index_status().state == "exact"


@pytest.mark.parametrize("using", [IMAGE_VECTOR, TEXT_VECTOR, INSTANCE_VECTOR])
def test_dense_searches_agree_under_every_filter(
    stores: tuple[VectorStore, VectorStore], using: str
) -> None:
    edge, server = stores
    dim = INSTANCE_DIM if using == INSTANCE_VECTOR else DIM
    own = {IMAGE_VECTOR: RECORDS[9].image_vector, TEXT_VECTOR: RECORDS[9].text_vector}
    probes = [*_probes(1, 3, dim), own.get(using, RECORDS[9].instance_vector)]
    compared = 0
    for vec in probes:
        for flt in FILTERS:
            for limit in (5, 100):
                want = edge.search_dense(vec, limit, flt, using=using)
                got = server.search_dense(vec, limit, flt, using=using)
                assert_same_hits(want, got, limit, f"{using} {flt} {limit}")
                compared += len(want)
    assert compared > 500
    # The point's own vector finds it first, at cosine 1, on both.
    first = server.search_dense(probes[-1], 1, using=using)[0]
    assert first.id == RECORDS[9].id or using == TEXT_VECTOR  # text: p09's images tie at 1
    assert first.score == pytest.approx(1.0, abs=1e-5)


def _floor_between(scores: list[float], rank: int) -> float:
    """A floor halfway between two distinct scores near ``rank``: no score sits on it."""
    for i in range(rank, len(scores) - 1):
        if scores[i] - scores[i + 1] > 1e-3:
            return (scores[i] + scores[i + 1]) / 2
    raise AssertionError("no gap between scores to put a floor in")


def test_score_floors_cut_at_the_same_place(stores: tuple[VectorStore, VectorStore]) -> None:
    edge, server = stores
    for vec in _probes(2, 3, DIM):
        for flt in (None, SearchFilter(category="Apparel")):
            scores = [h.score for h in edge.search_dense(vec, 100, flt)]
            floor = _floor_between(scores, len(scores) // 3)
            want = edge.search_dense(vec, 100, flt, min_score=floor)
            got = server.search_dense(vec, 100, flt, min_score=floor)
            assert 0 < len(want) < len(scores)
            assert all(h.score >= floor for h in got)
            assert_same_hits(want, got, 100, f"floor {floor}")
    scores = [h.score for h in edge.search_bm25("red shirt sale", 100)]
    floor = _floor_between(scores, 2)
    want = edge.search_bm25("red shirt sale", 100, min_score=floor)
    got = server.search_bm25("red shirt sale", 100, min_score=floor)
    assert 0 < len(want) < len(scores)
    assert_same_hits(want, got, 100, "bm25 floor")


BM25_QUERIES = [
    "red",
    "red shirt",
    "Denim JEANS",
    "fresh apple juice",
    "item3 sale",
    "sale sale sale",
    "blue tshirt item5",
    "orange bottle green",
    "nothing-matches-this",
    "the of and",  # stopwords only: no term, no hit
]


def test_bm25_scores_agree_term_for_term(stores: tuple[VectorStore, VectorStore]) -> None:
    edge, server = stores
    compared = 0
    for text in BM25_QUERIES:
        for flt in FILTERS:
            for limit in (3, 100):
                want = edge.search_bm25(text, limit, flt)
                got = server.search_bm25(text, limit, flt)
                assert_same_hits(want, got, limit, f"bm25 {text!r} {flt} {limit}")
                compared += len(want)
    assert compared > 300
    assert server.search_bm25("the of and", 5) == []


def test_payload_selection_returns_only_the_asked_fields(
    stores: tuple[VectorStore, VectorStore],
) -> None:
    edge, server = stores
    vec = _probes(3, 1, DIM)[0]
    for store in (edge, server):
        hits = store.search_dense(vec, 10, with_payload=HIT_FIELDS)
        assert hits and all(set(h.payload) == set(HIT_FIELDS) for h in hits)
        bare = store.search_bm25("red", 10, with_payload=False)
        assert bare and all(h.payload == {} for h in bare)
    assert_same_hits(
        edge.search_dense(vec, 10, with_payload=HIT_FIELDS),
        server.search_dense(vec, 10, with_payload=HIT_FIELDS),
        10,
        "selected",
    )


def test_a_batch_answers_as_its_queries_one_by_one(
    stores: tuple[VectorStore, VectorStore],
) -> None:
    edge, server = stores
    image, text = _probes(4, 2, DIM)
    queries = [
        DenseQuery(image, 8, SearchFilter(category="Apparel"), IMAGE_VECTOR),
        KeywordQuery("the of and", 5),  # answered without the engine, in its place
        KeywordQuery("red sale", 6, SearchFilter(price_min=10.0), with_payload=HIT_FIELDS),
        DenseQuery(text, 8, SearchFilter(exclude_products=("p03",)), TEXT_VECTOR),
    ]
    edge_batch, server_batch = edge.search_batch(queries), server.search_batch(queries)
    assert [len(x) for x in edge_batch][1] == 0
    for q, want, got in zip(queries, edge_batch, server_batch, strict=True):
        assert_same_hits(want, got, q.limit, str(q))
    assert_same_hits(
        edge_batch[0], edge.search_dense(image, 8, SearchFilter(category="Apparel")), 8
    )
    assert_same_hits(
        server_batch[2],
        server.search_bm25("red sale", 6, SearchFilter(price_min=10.0), with_payload=HIT_FIELDS),
        6,
    )


def test_lookups_agree(stores: tuple[VectorStore, VectorStore]) -> None:
    edge, server = stores
    ids = [RECORDS[i].id for i in (0, 4, 17, 30)]
    by_id = lambda hits: {h.id: h.payload for h in hits}  # noqa: E731
    assert by_id(edge.retrieve(ids)) == by_id(server.retrieve(ids))
    assert len(server.retrieve([*ids, point_id("nope", "x.jpg")])) == 4
    ev, sv = edge.vectors(ids), server.vectors(ids)
    assert ev.keys() == sv.keys() == set(ids)
    for pid in ids:
        assert ev[pid].keys() == sv[pid].keys() == {IMAGE_VECTOR, TEXT_VECTOR, INSTANCE_VECTOR}
        for name in ev[pid]:
            np.testing.assert_allclose(ev[pid][name], sv[pid][name], atol=1e-5)
    # Named vectors only: the photo leg reads its anchors' image vectors alone.
    one_e, one_s = edge.vectors(ids, (IMAGE_VECTOR,)), server.vectors(ids, (IMAGE_VECTOR,))
    for pid in ids:
        assert one_e[pid].keys() == one_s[pid].keys() == {IMAGE_VECTOR}
        np.testing.assert_allclose(one_e[pid][IMAGE_VECTOR], ev[pid][IMAGE_VECTOR], atol=1e-6)
        np.testing.assert_allclose(one_s[pid][IMAGE_VECTOR], sv[pid][IMAGE_VECTOR], atol=1e-6)
    for product in ("p02", "p07", "unknown"):
        assert by_id(edge.product_points(product)) == by_id(server.product_points(product))
    assert len(server.product_points("p02")) == 3
    fields = SYNC_FIELDS
    assert by_id(edge.scan(fields)) == by_id(server.scan(fields))
    assert by_id(server.scan(fields, page=7)) == by_id(server.scan(fields))
    assert all(set(p) == set(fields) for p in by_id(server.scan(fields)).values())
    some = [r.id for r in RECORDS[::3]]
    for key in ("category", "product_id", "attribute_terms"):
        assert dict(edge.facet(key, some)) == dict(server.facet(key, some))
    assert server.facet("category", []) == []
    for flt in FILTERS:
        assert edge.count(flt) == server.count(flt), flt


def _relative(hits: list[Hit]) -> list[Hit]:
    return [Hit(h.id, h.score / hits[0].score, h.payload) for h in hits]


def test_writes_and_deletes_keep_the_backends_in_step(tmp_path: Path) -> None:
    edge = _fill(EdgeStore(tmp_path / "edge"))
    server = _fill(QdrantServerStore.at_path(tmp_path / "local", ServerOptions()))
    try:
        changed = RECORDS[5]
        renamed = PointRecord(
            changed.id,
            changed.image_vector,
            changed.text_vector,
            "completely different words zebra",
            {**changed.payload, "title": "Zebra"},
            changed.instance_vector,
        )
        gone = [RECORDS[i].id for i in (0, 1, 2, 40)]
        for store in (edge, server):
            store.write([renamed], gone)
            store.delete([RECORDS[41].id])
        assert edge.count() == server.count() == len(RECORDS) - 5
        assert server.retrieve(gone) == []
        # The engine (embedded, and a server alike) counts deleted and replaced points in its
        # IDF until their segment is vacuumed; qdrant-client's local mode counts live points
        # only (its local_collection.py says so). A one-term query's scores are then one IDF
        # apart, the ranking the same: compare scores relative to the best.
        for text in ("zebra", "sale", "red", "jeans"):
            want, got = edge.search_bm25(text, 50), server.search_bm25(text, 50)
            assert want, text
            assert_same_hits(_relative(want), _relative(got), 50, text)
        vec = _probes(5, 1, DIM)[0]
        assert_same_hits(edge.search_dense(vec, 50), server.search_dense(vec, 50), 50, "dense")
    finally:
        edge.close()
        server.close()
