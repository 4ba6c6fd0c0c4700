"""Graph blocks: the store-made field that lets a filtered walk reach a whole category."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import models

from app.store import (
    EdgeStore,
    HnswOptions,
    PointRecord,
    QdrantServerStore,
    SearchFilter,
    category_ancestors,
    point_id,
)
from app.store.edge import payload_index_params
from app.store.graph_blocks import (
    GRAPH_BLOCK,
    block_of,
    engine_full_scan_kb,
    graph_blocks,
    with_blocks,
)
from app.store.server import ServerOptions, index_schemas


def test_a_points_block_is_its_ids_crc32_and_names_each_category_level() -> None:
    pid = point_id("p1", "a.jpg")
    assert block_of(pid, 16) == zlib.crc32(pid.encode()) % 16
    levels = category_ancestors("Apparel/Socks/Booties")
    block = block_of(pid, 16)
    assert graph_blocks(pid, levels, 16) == [f"{c}#{block}" for c in levels]
    # Spread over every block: each of 16 gets 1/16 of 16,000 ids, give or take.
    counts = np.bincount([block_of(point_id(f"p{i}", "a.jpg"), 16) for i in range(16_000)])
    assert len(counts) == 16 and counts.min() > 850 and counts.max() < 1150


def test_a_written_payload_carries_this_collections_blocks_and_no_other_stores() -> None:
    pid = point_id("p1", "a.jpg")
    levels = category_ancestors("Grocery/Fruit")
    mine = {"product_id": "p1", "category": levels}
    # Read from a store of 4 blocks, written to one of 8, then to one without.
    theirs = {**mine, GRAPH_BLOCK: graph_blocks(pid, levels, 4)}
    assert with_blocks(pid, theirs, 8) == {**mine, GRAPH_BLOCK: graph_blocks(pid, levels, 8)}
    assert with_blocks(pid, theirs, 0) == mine
    assert with_blocks(pid, mine, 0) is mine
    assert with_blocks(pid, {"product_id": "p2"}, 8) == {"product_id": "p2", GRAPH_BLOCK: []}
    assert GRAPH_BLOCK in theirs  # the caller's dict is left as it was


def test_the_engines_threshold_is_the_stores_over_the_blocks() -> None:
    assert engine_full_scan_kb(100_000, 16) == 6_250
    assert engine_full_scan_kb(100_000, 0) == 100_000  # no blocks: the store's own
    assert engine_full_scan_kb(10, 16) == 1  # never 0: every value, however small, would link


def _unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return out


def _island_store(folder: Path, blocks: int) -> tuple[EdgeStore, np.ndarray]:
    """3,012 points: 1,800 ``apparel`` tops around one centre, 1,200 shoes around another, and
    12 ``apparel`` booties beyond the shoes, as seen from the tops. The booties' neighbours are
    shoes, so a walk filtered to ``apparel`` has no matching path to them. Also a query among
    the booties. A sparse graph (m 4) and a scan threshold under ``apparel``'s 1,812 points, so
    that the filter walks."""
    rng = np.random.default_rng(0)
    dim = 32
    tops, shoes = _unit(rng.normal(size=dim)), _unit(rng.normal(size=dim))
    booties = _unit(shoes + 1.0 * (shoes - tops))
    groups = [(tops, 1.0, 1800, "Apparel/Tops"), (shoes, 0.5, 1200, "Footwear/Shoes")]
    groups.append((booties, 0.3, 12, "Apparel/Socks/Booties"))
    records = []
    for centre, spread, n, path in groups:
        for _ in range(n):
            v = _unit(centre + spread * rng.normal(size=dim) / np.sqrt(dim)).astype(np.float32)
            i = len(records)
            payload = {"product_id": f"p{i}", "category": category_ancestors(path)}
            records.append(PointRecord(point_id(f"p{i}", "a.jpg"), v, v, "x", payload))
    graph = HnswOptions(m=4, ef=64, full_scan_kb=160, graph_blocks=blocks)
    store = EdgeStore(folder, indexing_threshold_kb=1, hnsw=graph)
    store.ensure_collection(dim, "m")
    store.upsert(records)
    assert store.build_index()
    query = _unit(booties + 0.1 * rng.normal(size=dim) / np.sqrt(dim)).astype(np.float32)
    return store, query


def test_blocks_let_a_filtered_walk_reach_a_category_island(tmp_path: Path) -> None:
    apparel = SearchFilter(category="apparel")
    found = {}
    for blocks in (0, 16):
        store, query = _island_store(tmp_path / f"b{blocks}", blocks)
        try:
            assert not store.scans(apparel, "image")  # 1,812 points: walked, not scanned
            exact = {h.id for h in store.search_dense_with(query, 10, apparel, exact=True)}
            walked = {h.id for h in store.search_dense_with(query, 10, apparel)}
            found[blocks] = len(exact & walked)
            info = store.info().extra["hnsw"]
            assert info["graph_blocks"] == blocks
        finally:
            store.close()
    # Without blocks the walk ends among the tops: none found in 30 of 30 builds tried. (The
    # engine builds in parallel and picks its entry point at random; one inside the island
    # would find them, so the island is kept to 12 of 1,812 points.) With blocks, all 10.
    assert found[0] <= 2
    assert found[16] == 10


def test_blocks_are_written_indexed_and_old_stores_go_on_without(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "q", hnsw=HnswOptions(graph_blocks=8))
    pid = point_id("p1", "a.jpg")
    levels = category_ancestors("Apparel/Topwear/Shirts")
    v = np.ones(8, np.float32)
    payload = {"product_id": "p1", "category": levels}
    store.ensure_collection(8, "m")
    store.upsert([PointRecord(pid, v, v, "shirt", payload)])
    assert payload == {"product_id": "p1", "category": levels}  # the caller's dict is its own
    try:
        assert store.retrieve([pid])[0].payload[GRAPH_BLOCK] == graph_blocks(pid, levels, 8)
        schema = store._require().info().payload_schema
        assert set(schema) == set(payload_index_params(8)) and GRAPH_BLOCK in schema
        # Only the blocks build links: the engine's other values are scanned or walked whole.
        params = payload_index_params(8)
        assert params[GRAPH_BLOCK].enable_hnsw is True  # type: ignore[union-attr]
        assert all(
            p.enable_hnsw is False  # type: ignore[union-attr]
            for name, p in params.items()
            if name != GRAPH_BLOCK
        )
        config = json.loads((tmp_path / "q" / "shard" / "edge_config.json").read_text())
        assert config["hnsw_config"]["full_scan_threshold"] == 100_000 // 8
    finally:
        store.close()
    # A store made before blocks: its meta has none, and writes carry none.
    meta_path = tmp_path / "q" / "snapshop.json"
    meta = json.loads(meta_path.read_text())
    del meta["hnsw"]["graph_blocks"]
    meta_path.write_text(json.dumps(meta))
    old = EdgeStore(tmp_path / "q")
    try:
        old.upsert([PointRecord(pid, v, v, "shirt", payload)])
        assert GRAPH_BLOCK not in old.retrieve([pid])[0].payload
        assert old.info().extra["hnsw"].get("graph_blocks") is None
    finally:
        old.close()
    assert all(getattr(p, "enable_hnsw", None) is None for p in payload_index_params(0).values())


def test_the_server_backend_writes_the_same_blocks(tmp_path: Path) -> None:
    store = QdrantServerStore.at_path(
        tmp_path / "s", ServerOptions(hnsw=HnswOptions(graph_blocks=4))
    )
    pid = point_id("p1", "a.jpg")
    levels = category_ancestors("Grocery/Fruit")
    v = np.ones(8, np.float32)
    try:
        store.ensure_collection(8, "m")
        store.upsert([PointRecord(pid, v, v, "apple", {"product_id": "p1", "category": levels})])
        assert store.retrieve([pid])[0].payload[GRAPH_BLOCK] == graph_blocks(pid, levels, 4)
    finally:
        store.close()
    schemas = dict(index_schemas(4))
    assert schemas[GRAPH_BLOCK] == models.KeywordIndexParams(
        type=models.KeywordIndexType.KEYWORD, enable_hnsw=True
    )
    assert all(s.enable_hnsw is False for name, s in schemas.items() if name != GRAPH_BLOCK)
    assert GRAPH_BLOCK not in dict(index_schemas(0))
    with pytest.raises(ValueError, match="HNSW options"):
        HnswOptions(graph_blocks=-1)
