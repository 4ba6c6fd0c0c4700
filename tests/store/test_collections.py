"""Collections per model and the live pointer, on both backends: the embedded engine
(``live.json`` beside the shards) and a Qdrant server (an alias; qdrant-client's local mode
standing in for a server).

A swap moves the live pointer in one step and keeps the old collection; a store opened on a
collection keeps answering from it after a swap (a server switches its encoder with it, never
under it); the live collection cannot be dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from app.components import open_collections
from app.settings import Settings
from app.store import PointRecord, StoreError, point_id
from app.store.collections import StoreCollections, model_tag
from app.store.edge_collections import LIVE_FILE, ROOT_COLLECTION
from app.store.errors import CollectionRefusedError, NoSuchCollectionError

DIM = 4


def _points(n: int, dim: int = DIM) -> list[PointRecord]:
    rng = np.random.default_rng(n)
    return [
        PointRecord(
            id=point_id(f"p{i}", "a.jpg"),
            image_vector=rng.normal(size=dim).astype(np.float32),
            text_vector=rng.normal(size=dim).astype(np.float32),
            text=f"red shirt number{i}",
            payload={"product_id": f"p{i}", "category": ["apparel"]},
        )
        for i in range(n)
    ]


def _settings(tmp_path: Path, backend: str) -> Settings:
    if backend == "server-local":
        return Settings(data_dir=tmp_path / "data", qdrant_path=tmp_path / "local")
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture(params=["embedded", "server-local"])
def collections(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StoreCollections]:
    opened = open_collections(_settings(tmp_path, request.param))
    yield opened
    opened.close()


def _fill(collections: StoreCollections, name: str | None, model: str, n: int, dim: int) -> None:
    with closing(collections.open(name)) as store:
        store.ensure_collection(dim, model, ["red shirt"], bundle=f"/bundles/{model}")
        store.upsert(_points(n, dim))


def test_a_second_model_is_built_beside_the_live_one_and_swapped_in(
    collections: StoreCollections,
) -> None:
    _fill(collections, None, "m1", 3, DIM)  # the first collection: through the live pointer
    old = collections.live()
    assert old is not None and collections.meta(old)["model_id"] == "m1"  # type: ignore[index]
    new = collections.collection_for("m2")
    assert new != old and model_tag("m2") in new
    _fill(collections, new, "m2", 5, DIM + 2)  # another size: nothing mixes by accident
    assert collections.live() == old  # built beside it, not live

    serving = collections.open(old)  # what a server holds while the swap happens
    try:
        rows = collections.list({old: serving})  # as a server lists what it holds
        assert [(c.name, c.live, c.model_id, c.points) for c in rows] == [
            (old, True, "m1", 3),
            (new, False, "m2", 5),
        ]
        assert rows[1].bundle == "/bundles/m2" and rows[1].created_at is not None

        assert collections.swap(new) == old
        assert collections.live() == new
        # A store opened on the old collection answers from it still, in its own size.
        assert serving.count() == 3
        assert len(serving.search_dense(np.ones(DIM, dtype=np.float32), 10)) == 3
    finally:
        serving.close()
    with closing(collections.open()) as live:  # the live one, now the second model's
        assert live.count() == 5 and live.info().model_id == "m2"

    with pytest.raises(CollectionRefusedError, match="live collection"):
        collections.drop(new)
    with pytest.raises(NoSuchCollectionError):
        collections.drop("no-such-collection")
    with pytest.raises(NoSuchCollectionError):
        collections.swap("no-such-collection")
    assert collections.swap(old) == new  # swapping back undoes it
    assert collections.swap(new) == old
    collections.drop(old)
    assert [c.name for c in collections.list()] == [new]
    assert collections.meta(old) is None


def test_a_fresh_server_alias_gets_a_collection_named_after_its_model(tmp_path: Path) -> None:
    with closing(open_collections(_settings(tmp_path, "server-local"))) as collections:
        assert collections.live() is None
        _fill(collections, None, "m1", 2, DIM)
        assert (
            collections.live() == f"snapshop-{model_tag('m1')}" == collections.collection_for("m1")
        )


def test_a_server_collection_made_before_aliases_is_served_but_not_swapped(
    tmp_path: Path,
) -> None:
    from app.store.server import ServerOptions

    with closing(open_collections(_settings(tmp_path, "server-local"))) as collections:
        legacy = collections.open("snapshop")  # a collection named as the alias
        assert isinstance(legacy.options, ServerOptions) and not legacy.options.alias
        legacy.ensure_collection(DIM, "m1")
        legacy.upsert(_points(2))
        legacy.close()
        assert collections.live() == "snapshop"
        with closing(collections.open()) as live:
            assert live.count() == 2
        _fill(collections, collections.collection_for("m2"), "m2", 2, DIM)
        with pytest.raises(CollectionRefusedError, match="a collection, not an alias"):
            collections.swap(collections.collection_for("m2"))
        assert collections.live() == "snapshop"


def test_embedded_collections_live_in_their_folders_with_an_atomic_pointer(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, "embedded")
    with closing(open_collections(settings)) as collections:
        assert collections.live() == ROOT_COLLECTION and collections.list()[0].points == 0
        _fill(collections, None, "m1", 2, DIM)
        new = collections.collection_for("m2")
        _fill(collections, new, "m2", 3, DIM)
        assert (settings.store_dir / "collections" / new / "snapshop.json").is_file()
        collections.swap(new)
        # building the first model again (to swap back) finds its collection, not a copy
        assert collections.collection_for("m1") == ROOT_COLLECTION
        pointer = json.loads((settings.store_dir / LIVE_FILE).read_text())
        assert pointer["collection"] == new
        assert not list(settings.store_dir.glob(f".{LIVE_FILE}*"))  # no temporary left

        held = collections.open(ROOT_COLLECTION)  # another process's shard, say
        try:
            with pytest.raises(StoreError, match="open in another"):
                collections.drop(ROOT_COLLECTION)
            [row] = [c for c in collections.list() if c.name == ROOT_COLLECTION]
            assert row.points is None and "open in another" in (row.error or "")
            # counted through the store this process holds (what a server passes)
            [row] = [c for c in collections.list({ROOT_COLLECTION: held}) if not c.live]
            assert (row.name, row.points, row.error) == (ROOT_COLLECTION, 2, None)
        finally:
            held.close()
        collections.drop(ROOT_COLLECTION)
        assert collections.names() == [new]  # type: ignore[attr-defined]

        (settings.store_dir / LIVE_FILE).write_text("{not json")
        with pytest.raises(StoreError, match=LIVE_FILE):
            collections.live()


def test_settings_give_a_new_embedded_collection_its_graph_and_int8_codes(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        qdrant_scalar_quantization=True,
        hnsw_m=12,
        hnsw_ef_construct=48,
        hnsw_ef=64,
        hnsw_full_scan_kb=900,
        hnsw_graph_blocks=4,
    )
    with closing(open_collections(settings)) as collections:
        _fill(collections, None, "m1", 5, DIM)
        with closing(collections.open()) as store:
            extra = store.info().extra
            assert extra["quantization"] == "int8"
            graph = extra["hnsw"]
            assert graph == {
                "m": 12,
                "ef_construct": 48,
                "full_scan_kb": 900,
                "graph_blocks": 4,
                "ef": 64,
                "acorn": 0.4,
            }
            assert store.search_dense(_points(5)[3].image_vector, 1)[0].id == _points(5)[3].id
    # Other settings later: the collection keeps its codes and graph, the beam follows them.
    later = open_collections(Settings(data_dir=tmp_path / "data"))
    with closing(later), closing(later.open()) as store:
        assert store.info().extra["quantization"] == "int8"
        graph = store.info().extra["hnsw"]
        assert graph == {
            "m": 12,
            "ef_construct": 48,
            "full_scan_kb": 100_000,  # the collection scans below 900 KB, the store below this
            "graph_blocks": 4,
            "ef": 384,
            "acorn": 0.4,
        }
