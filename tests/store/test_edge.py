"""The embedded qdrant-edge backend, exercised for real on small random vectors."""

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from app.store import (
    TEXT_VECTOR,
    EdgeStore,
    Hit,
    HnswOptions,
    ModelMismatchError,
    PointRecord,
    SearchFilter,
    StoreError,
    category_ancestors,
    point_id,
)
from app.store.edge import PAYLOAD_INDEX_MEMORY, payload_index_params
from app.store.fields import HIT_FIELDS

DIM = 8


def _records(n: int, seed: int = 0) -> list[PointRecord]:
    rng = np.random.default_rng(seed)
    cats = ["Apparel/Topwear/Shirts", "Apparel/Bottomwear/Jeans", "Grocery/Fruit/Apple"]
    words = ["shirt cotton", "denim jeans", "red apple"]
    out = []
    for i in range(n):
        c = i % 3
        out.append(
            PointRecord(
                id=point_id(f"p{i}", f"p{i}.jpg"),
                image_vector=rng.normal(size=DIM).astype(np.float32),
                text_vector=rng.normal(size=DIM).astype(np.float32),
                text=f"{words[c]} item{i}",
                payload={
                    "product_id": f"p{i}",
                    "title": f"{words[c]} {i}",
                    "category": category_ancestors(cats[c]),
                    "category_path": cats[c],
                    "year": 2000 + i,
                },
            )
        )
    return out


@pytest.fixture
def store(tmp_path: Path) -> EdgeStore:
    s = EdgeStore(tmp_path / "qdrant")
    s.ensure_collection(DIM, "test-model")
    s.upsert(_records(30))
    yield s
    s.close()


def test_point_ids_are_stable_uuid5() -> None:
    assert point_id("p1", "a.jpg") == point_id("p1", "a.jpg")
    assert point_id("p1", "a.jpg") != point_id("p1", "b.jpg")
    assert len(point_id("p1", "a.jpg")) == 36


def test_category_ancestors_cover_every_prefix() -> None:
    assert category_ancestors(" Apparel/Topwear/ Shirts/") == [
        "apparel",
        "apparel/topwear",
        "apparel/topwear/shirts",
    ]
    assert category_ancestors("") == []


def test_a_vector_finds_its_own_point_first(store: EdgeStore) -> None:
    recs = _records(30)
    for rec in recs[:5]:
        hits = store.search_dense(rec.image_vector, 3)
        assert hits[0].id == rec.id
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits[0].payload["product_id"] == rec.payload["product_id"]


def test_category_prefix_filter_matches_descendants_only(store: EdgeStore) -> None:
    probe = np.ones(DIM, dtype=np.float32)
    hits = store.search_dense(probe, 30, SearchFilter(category="apparel"))
    assert len(hits) == 20
    assert all(h.payload["category_path"].startswith("Apparel/") for h in hits)
    hits = store.search_dense(probe, 30, SearchFilter(category="Apparel/Topwear"))
    assert {h.payload["category_path"] for h in hits} == {"Apparel/Topwear/Shirts"}
    assert store.search_dense(probe, 30, SearchFilter(category="Apparel/Top")) == []
    assert store.count(SearchFilter(category="grocery")) == 10


def test_bm25_ranks_matching_text_and_respects_filters(store: EdgeStore) -> None:
    hits = store.search_bm25("denim", 50)
    assert len(hits) == 10
    assert all("denim" in h.payload["title"] for h in hits)
    # A rare term outranks a common one: item7 appears once, "denim" in ten points.
    assert store.search_bm25("denim item7", 5)[0].payload["product_id"] == "p7"
    assert store.search_bm25("apple", 50, SearchFilter(category="Apparel")) == []
    assert store.search_bm25("the of and", 5) == []


def test_upsert_replaces_and_delete_removes(store: EdgeStore) -> None:
    rec = _records(1)[0]
    store.upsert(
        [
            PointRecord(
                rec.id,
                rec.image_vector,
                rec.text_vector,
                "new words",
                {**rec.payload, "title": "x"},
            )
        ]
    )
    assert store.count() == 30
    assert store.retrieve([rec.id])[0].payload["title"] == "x"
    store.delete([rec.id])
    assert store.count() == 29
    assert store.retrieve([rec.id]) == []


def test_data_survives_reopen_and_index_build(tmp_path: Path) -> None:
    s = EdgeStore(tmp_path / "q")
    s.ensure_collection(DIM, "m1")
    s.upsert(_records(12))
    s.build_index()
    s.close()
    again = EdgeStore(tmp_path / "q")
    try:
        assert again.count() == 12
        info = again.info()
        assert (info.points, info.dim, info.model_id) == (12, DIM, "m1")
        assert again.search_dense(_records(12)[3].image_vector, 1)[0].payload["product_id"] == "p3"
    finally:
        again.close()


def test_wrong_model_or_second_process_is_a_clear_error(store: EdgeStore, tmp_path: Path) -> None:
    with pytest.raises(ModelMismatchError, match="holds vectors of model test-model"):
        store.ensure_collection(DIM, "another-model")
    with pytest.raises(StoreError, match="open in another snapshop process") as err:
        EdgeStore(tmp_path / "qdrant")
    assert not isinstance(err.value, ModelMismatchError)  # nothing --replace-model may drop


def test_an_empty_store_says_how_to_fill_it(tmp_path: Path) -> None:
    empty = EdgeStore(tmp_path / "none")
    assert empty.count() == 0
    with pytest.raises(StoreError, match="snapshop ingest"):
        empty.search_dense(np.ones(DIM, dtype=np.float32), 3)


def test_drop_empties_the_store_for_another_model(tmp_path: Path) -> None:
    s = EdgeStore(tmp_path / "q")
    s.ensure_collection(DIM, "old-model")
    s.upsert(_records(5))
    s.drop()
    assert s.count() == 0
    s.ensure_collection(DIM * 2, "new-model")  # no "holds vectors of model" error now
    assert s.info().model_id == "new-model"
    s.close()
    assert EdgeStore(tmp_path / "q").info().dim == DIM * 2


def test_scan_pages_through_every_point_with_selected_fields(store: EdgeStore) -> None:
    hits = list(store.scan(["product_id"], page=7))  # type: ignore[call-arg]
    assert len(hits) == 30
    assert len({h.id for h in hits}) == 30
    assert all(set(h.payload) == {"product_id"} for h in hits)


def test_a_creation_interrupted_before_its_meta_is_redone(tmp_path: Path) -> None:
    s = EdgeStore(tmp_path / "q")
    s.ensure_collection(DIM, "m")
    s.close()
    (tmp_path / "q" / "snapshop.json").unlink()  # as if killed between shard and meta
    again = EdgeStore(tmp_path / "q")
    again.ensure_collection(DIM, "m")
    again.upsert(_records(3))
    assert again.count() == 3
    again.close()


def test_text_vectors_are_searched_separately_from_image_vectors(store: EdgeStore) -> None:
    rec = _records(30)[4]
    by_text = store.search_dense(rec.text_vector, 1, using=TEXT_VECTOR)
    assert by_text[0].id == rec.id
    assert by_text[0].score == pytest.approx(1.0, abs=1e-5)
    # The same query against the image vectors is just another random vector.
    assert store.search_dense(rec.text_vector, 1)[0].score < 0.999
    with pytest.raises(ValueError, match="unknown dense vector"):
        store.search_dense(rec.text_vector, 1, using="colour")


def test_bm25_average_length_comes_from_the_engines_own_tokens(tmp_path: Path) -> None:
    s = EdgeStore(tmp_path / "q")
    # "the", "of" and "and" are stopwords: 2 + 4 terms -> mean 3, not the 4.5 words.
    s.ensure_collection(DIM, "m", ["the red apple", "shirts of cotton and denim jeans"])
    assert s.info().extra["bm25_avg_len"] == pytest.approx(3.0)
    # Plural and singular stem to the same term.
    assert s.bm25_tokens("shirts") == s.bm25_tokens("shirt")
    s.close()


def test_index_status_says_exact_below_threshold_and_ready_after_build(tmp_path: Path) -> None:
    small = EdgeStore(tmp_path / "small")
    small.ensure_collection(DIM, "m")
    small.upsert(_records(30))
    assert small.index_status().state == "exact"  # default threshold: ~320k vectors of dim 8
    small.close()
    # A threshold of 1 KB (32 vectors of dim 8) makes 60 points big enough to need HNSW.
    big = EdgeStore(tmp_path / "big", indexing_threshold_kb=1)
    big.ensure_collection(DIM, "m")
    big.upsert(_records(60))
    status = big.index_status()
    assert status.state == "pending", status
    assert "exact" in status.describe()
    probe = _records(60)[7]
    assert big.search_dense(probe.image_vector, 1)[0].id == probe.id  # correct before the index
    assert big.build_index()
    status = big.index_status()
    assert (status.state, status.indexed_vectors, status.vectors) == ("ready", 120, 120)
    assert big.search_dense(probe.image_vector, 1)[0].id == probe.id
    big.close()


def test_a_store_of_an_older_format_asks_for_replace_model(tmp_path: Path) -> None:
    s = EdgeStore(tmp_path / "q")
    s.ensure_collection(DIM, "m")
    s.close()
    meta = tmp_path / "q" / "snapshop.json"
    meta.write_text(meta.read_text().replace('"format": 2', '"format": 1'))
    old = EdgeStore(tmp_path / "q")
    with pytest.raises(ModelMismatchError, match=r"older snapshop.*--replace-model"):
        old.ensure_collection(DIM, "m")
    old.drop()
    old.ensure_collection(DIM, "m")
    assert old.info().extra["format"] == 2
    old.close()


def test_facet_counts_only_the_given_points(store: EdgeStore) -> None:
    from collections import Counter

    chosen = [f"p{i}" for i in (0, 1, 3, 4, 6, 9, 12, 2)]
    ids = [point_id(p, f"{p}.jpg") for p in chosen]
    cats = ["Apparel/Topwear/Shirts", "Apparel/Bottomwear/Jeans", "Grocery/Fruit/Apple"]
    oracle = Counter(level for p in chosen for level in category_ancestors(cats[int(p[1:]) % 3]))
    got = store.facet("category", ids)
    assert dict(got) == dict(oracle)
    assert [n for _, n in got] == sorted((n for _, n in got), reverse=True)
    assert store.facet("category", []) == []


def test_an_int8_store_keeps_codes_and_rescores_with_the_originals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="quantization must be"):
        EdgeStore(tmp_path / "bad", quantization="int4")
    recs = _records(80)
    s = EdgeStore(tmp_path / "q", indexing_threshold_kb=1, quantization="int8")
    s.ensure_collection(DIM, "m")
    s.upsert(recs)
    assert s.build_index()
    s.close()
    again = EdgeStore(tmp_path / "q")  # the collection keeps its own setting
    try:
        assert again.info().extra["quantization"] == "int8"
        config = json.loads((tmp_path / "q" / "shard" / "edge_config.json").read_text())
        image = config["vectors"]["image"]
        assert image["on_disk"] is True and image["quantization_config"]["scalar"]["type"] == "int8"
        matrix = np.stack([r.image_vector for r in recs])
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        for rec in recs[:5]:
            # Rescored with the float originals: a point's own vector scores 1.
            hit = again.search_dense(rec.image_vector, 1)[0]
            assert hit.id == rec.id and hit.score == pytest.approx(1.0, abs=1e-5)
            # Exact search is the brute-force cosine order.
            q = rec.image_vector / np.linalg.norm(rec.image_vector)
            truth = [recs[i].id for i in np.argsort(-(matrix @ q))[:5]]
            assert [h.id for h in again.search_dense_with(rec.image_vector, 5, exact=True)] == truth
            codes_only = again.search_dense_with(rec.image_vector, 5, rescore=False)
            assert len(codes_only) == 5 and not codes_only[0].payload
    finally:
        again.close()


def test_the_graph_is_built_as_configured_and_the_beam_follows_the_opener(tmp_path: Path) -> None:
    recs = _records(80)
    s = EdgeStore(tmp_path / "g", indexing_threshold_kb=1, hnsw=HnswOptions(8, 24, 40, 500))
    s.ensure_collection(DIM, "m")
    s.upsert(recs)
    assert s.build_index()
    graph = s.info().extra["hnsw"]
    assert graph == {
        "m": 8,
        "ef_construct": 24,
        "full_scan_kb": 500,
        "graph_blocks": 16,
        "ef": 40,
        "acorn": 0.4,
    }
    s.close()
    config = json.loads((tmp_path / "g" / "shard" / "edge_config.json").read_text())
    graph = config["hnsw_config"]
    # The engine's threshold is a sixteenth of the store's, so that the 16 blocks of every
    # category the store walks get links (app.store.graph_blocks).
    assert (graph["m"], graph["ef_construct"], graph["full_scan_threshold"]) == (8, 24, 31)
    # Reopened with other options: the graph is the collection's, the beam the opener's, and
    # filters scan below the larger threshold (the collection's and the opener's).
    again = EdgeStore(tmp_path / "g", hnsw=HnswOptions(32, 256, 12, full_scan_kb=300))
    try:
        graph = again.info().extra["hnsw"]
        assert graph == {
            "m": 8,
            "ef_construct": 24,
            "full_scan_kb": 500,
            "graph_blocks": 16,
            "ef": 12,
            "acorn": 0.4,
        }
        for rec in recs[:5]:
            assert again.search_dense(rec.image_vector, 1)[0].id == rec.id
            wide = again.search_dense_with(rec.image_vector, 5, ef=64)
            assert [h.id for h in wide] == [
                h.id for h in again.search_dense_with(rec.image_vector, 5, exact=True)
            ]
    finally:
        again.close()
    wider = EdgeStore(tmp_path / "g", hnsw=HnswOptions(32, 256, 12, full_scan_kb=2_000))
    try:
        assert wider.info().extra["hnsw"]["full_scan_kb"] == 2_000
    finally:
        wider.close()
    with pytest.raises(ValueError, match="HNSW options"):
        HnswOptions(m=2)


def _spy_requests(store: EdgeStore, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every engine request ``store`` builds from now on, in order."""
    sent: list[object] = []
    request = store._request

    def spy(query: object, payload: bool = True) -> object:
        out = request(query, payload)  # type: ignore[arg-type]
        sent.append(out)
        return out

    monkeypatch.setattr(store, "_request", spy)
    return sent


def test_the_beam_and_acorn_follow_the_collection_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A graph from the first points (indexing threshold 1 KB) and filters walked, not scanned
    # (a filter matching 1 KB, 32 vectors of 8 floats, or more), so ACORN takes part.
    hnsw = HnswOptions(8, 24, ef=40, full_scan_kb=1, ef_large=90, large_from=250)
    s = EdgeStore(tmp_path / "g", indexing_threshold_kb=1, hnsw=hnsw)
    sent = _spy_requests(s, monkeypatch)
    recs = _records(300)
    flt = SearchFilter(category="apparel")  # 2 in 3 points
    try:
        s.ensure_collection(DIM, "m")
        s.upsert(recs[:200])
        assert s.build_index()

        def params() -> tuple[int, float | None]:
            sent.clear()
            s.search_dense(recs[0].image_vector, 5, flt)
            got = sent[-1].params  # type: ignore[attr-defined]
            return got.hnsw_ef, got.acorn.max_selectivity if got.acorn else None

        assert params() == (40, 0.4)
        assert s.info().extra["hnsw"]["ef"] == 40 and s.info().extra["hnsw"]["acorn"] == 0.4
        # The filtered walk with ACORN still finds what an exact scan of the matches finds.
        for rec in recs[:10]:
            exact = s.search_dense_with(rec.image_vector, 5, flt, exact=True)
            assert [h.id for h in s.search_dense(rec.image_vector, 5, flt)] == [h.id for h in exact]
        s.upsert(recs[200:])  # 300 points: the large regime, read again after the write
        assert params() == (90, None)
        assert s.info().extra["hnsw"]["ef"] == 90 and s.info().extra["hnsw"]["acorn"] is None
        s.delete([r.id for r in recs[100:]])  # back to 100 points
        assert params() == (40, 0.4)
    finally:
        s.close()


def test_a_filter_whose_matches_fit_the_threshold_is_scanned_whatever_the_collection_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recs = _records(300)  # 100 grocery points (3.2 KB of 8 floats), 200 apparel (6.4 KB)
    made = EdgeStore(tmp_path / "g", indexing_threshold_kb=1, hnsw=HnswOptions(8, 24, 40, 1))
    made.ensure_collection(DIM, "m")
    made.upsert(recs)
    assert made.build_index()
    made.close()
    # The collection scans below 1 KB; this store's option, 4 KB, holds for its searches.
    s = EdgeStore(tmp_path / "g", hnsw=HnswOptions(8, 24, 40, full_scan_kb=4))
    sent = _spy_requests(s, monkeypatch)
    grocery, apparel = SearchFilter(category="grocery"), SearchFilter(category="apparel")
    try:

        def exact(flt: SearchFilter | None) -> bool:
            sent.clear()
            s.search_dense(recs[0].image_vector, 5, flt)
            return bool(sent[-1].params.exact)  # type: ignore[attr-defined]

        assert (exact(grocery), exact(apparel), exact(None)) == (True, False, False)
        for rec in recs[:10]:
            scanned = s.search_dense(rec.image_vector, 10, grocery)
            truth = s.search_dense_with(rec.image_vector, 10, grocery, exact=True)
            assert [h.id for h in scanned] == [h.id for h in truth]
        s.delete([r.id for r in recs if "grocery" not in r.payload["category"]][:180])
        assert exact(apparel)  # 20 apparel points left: counted again after the write
    finally:
        s.close()


@pytest.mark.parametrize("compact_from", [0, 10**9], ids=["compact", "dict"])
def test_hit_fields_come_from_memory_and_follow_every_write(
    store: EdgeStore, compact_from: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.store import hit_map

    monkeypatch.setattr(hit_map, "COMPACT_FROM", compact_from)
    recs = _records(30)
    probe = recs[4]
    hits = store.search_dense(probe.image_vector, 30, with_payload=HIT_FIELDS)
    stored = {h.id: h.payload for h in store.retrieve([h.id for h in hits])}
    for hit in hits:  # what the map holds is what the engine holds
        assert hit.payload == {f: stored[hit.id][f] for f in HIT_FIELDS if f in stored[hit.id]}
    moved = PointRecord(
        id=probe.id,
        image_vector=probe.image_vector,
        text_vector=probe.text_vector,
        text=probe.text,
        payload={**probe.payload, "category_path": "Grocery/Fruit/Pear", "image_file": "new.jpg"},
    )
    kind = hit_map.HitFieldMap if compact_from == 0 else hit_map.PlainHitMap
    assert isinstance(store._mapped, kind)
    store.write([moved], [recs[5].id])
    hits = store.search_dense(probe.image_vector, 30, with_payload=HIT_FIELDS)
    assert hits[0].id == probe.id
    assert hits[0].payload["category_path"] == "Grocery/Fruit/Pear"
    assert hits[0].payload["image_file"] == "new.jpg"
    assert recs[5].id not in {h.id for h in hits}
    # Other selections still read the engine's payloads.
    assert store.search_dense(probe.image_vector, 1, with_payload=("title",))[0].payload == {
        "title": probe.payload["title"]
    }


def test_a_write_landing_while_the_map_is_read_is_not_lost(store: EdgeStore) -> None:
    probe = _records(30)[7]
    moved = PointRecord(
        id=probe.id,
        image_vector=probe.image_vector,
        text_vector=probe.text_vector,
        text=probe.text,
        payload={**probe.payload, "category_path": "Grocery/Fruit/Pear"},
    )
    scan = store.scan
    writes = []

    def scan_then_write(fields: Sequence[str]) -> Iterator[Hit]:
        hits = list(scan(fields))  # read before the write below, as a slow scan would
        if not writes:
            store.write([moved], [])
            writes.append(moved.id)
        return iter(hits)

    store.scan = scan_then_write  # type: ignore[method-assign]
    hit = store.search_dense(probe.image_vector, 1, with_payload=HIT_FIELDS)[0]
    assert writes and hit.id == probe.id
    assert hit.payload["category_path"] == "Grocery/Fruit/Pear"


def test_a_hit_missing_from_the_map_is_read_from_the_engine(store: EdgeStore) -> None:
    probe = _records(30)[9]
    store.search_dense(probe.image_vector, 1, with_payload=HIT_FIELDS)  # the map is built
    assert store._mapped is not None
    store._mapped.delete(probe.id)  # as if deleted after the engine answered
    hit = store.search_dense(probe.image_vector, 1, with_payload=HIT_FIELDS)[0]
    assert hit.id == probe.id and hit.payload["product_id"] == probe.payload["product_id"]


def _index_memory(store: EdgeStore) -> dict[str, object]:
    schema = store._require().info().payload_schema
    return {name: getattr(info.params, "memory", None) for name, info in schema.items()}


def test_payload_indexes_stay_in_their_files_and_older_stores_are_moved_there(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    every = set(payload_index_params(HnswOptions().graph_blocks))
    s = EdgeStore(tmp_path / "qdrant")
    s.ensure_collection(DIM, "test-model")
    s.upsert(_records(30))
    assert _index_memory(s) == dict.fromkeys(every, PAYLOAD_INDEX_MEMORY)
    # As a store made before: indexes in the heap (the engine's default), one field's index
    # dropped and not made again (a run stopped in between).
    shard = s._require()
    for name in every:
        shard.update(qe.UpdateOperation.delete_field_index(name))
    shard.update(qe.UpdateOperation.create_field_index("category", qe.PayloadSchemaType.Keyword))
    shard.update(qe.UpdateOperation.create_field_index("year", qe.PayloadSchemaType.Integer))
    assert _index_memory(s) == {"category": None, "year": None}
    s.close()
    with caplog.at_level(logging.WARNING, logger="app.store.edge"):
        again = EdgeStore(tmp_path / "qdrant")
    # The command line shows warnings only: a move of minutes at 1M points is announced.
    moved = [r.getMessage() for r in caplog.records if "moving the payload index" in r.getMessage()]
    assert sorted(m.split("'")[1] for m in moved) == ["category", "year"]
    try:
        assert _index_memory(again) == dict.fromkeys(every, PAYLOAD_INDEX_MEMORY)
        # The indexes made again answer filters as before.
        shirts = SearchFilter(category="Apparel/Topwear")
        assert again.count(shirts) == 10
        hits = again.search_dense(_records(1)[0].image_vector, 30, shirts)
        assert {h.payload["category_path"] for h in hits} == {"Apparel/Topwear/Shirts"}
        assert again.facet("category", [h.id for h in hits])[0] == ("apparel", 10)
        assert again.count(SearchFilter(exclude_products=("p0", "p1"))) == 28
    finally:
        again.close()
