"""The Qdrant server backend's own behaviour: chosen by settings alone, what a server that is down
or slow does to it (a transient error, never a model mismatch), and the collections it refuses.

Answers are compared with the embedded engine in test_congruence.py; here qdrant-client's local
mode stands in for a server, and a loopback socket that never answers for a hung one.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from qdrant_client import QdrantClient, models

from app.components import open_store
from app.settings import Settings
from app.store import (
    DENSE_VECTORS,
    EdgeStore,
    HnswOptions,
    ModelMismatchError,
    PointRecord,
    QdrantServerStore,
    SearchFilter,
    StoreError,
    StoreUnavailableError,
    point_id,
)
from app.store.server import META_KEY, ServerOptions
from tests.helpers import free_port

DIM = 4


def _point(i: int) -> PointRecord:
    rng = np.random.default_rng(i)
    return PointRecord(
        id=point_id(f"p{i}", "a.jpg"),
        image_vector=rng.normal(size=DIM).astype(np.float32),
        text_vector=rng.normal(size=DIM).astype(np.float32),
        text=f"red shirt number{i}",
        payload={"product_id": f"p{i}", "category": ["apparel"]},
    )


def test_settings_alone_choose_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPSHOP_DATA_DIR", str(tmp_path / "data"))
    edge = open_store(Settings())
    assert isinstance(edge, EdgeStore)
    edge.close()

    monkeypatch.setenv("SNAPSHOP_QDRANT_PATH", str(tmp_path / "local"))
    monkeypatch.setenv("SNAPSHOP_QDRANT_COLLECTION", "catalog-v1")
    local = open_store(Settings())
    assert isinstance(local, QdrantServerStore) and local.backend == "qdrant-local"
    assert local.collection == "catalog-v1"
    local.close()

    monkeypatch.delenv("SNAPSHOP_QDRANT_PATH")
    monkeypatch.setenv("SNAPSHOP_QDRANT_URL", "http://127.0.0.1:6333")
    monkeypatch.setenv("SNAPSHOP_QDRANT_SHARD_NUMBER", "3")
    monkeypatch.setenv("SNAPSHOP_QDRANT_SCALAR_QUANTIZATION", "true")
    remote = open_store(Settings())  # nothing is asked of the server yet
    assert isinstance(remote, QdrantServerStore) and remote.backend == "qdrant-server"
    assert remote.options.shard_number == 3 and remote.options.scalar_quantization
    remote.close()


def test_settings_refuse_two_locations_and_a_url_that_is_not_http(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not both"):
        Settings(qdrant_url="http://localhost:6333", qdrant_path=tmp_path)
    with pytest.raises(ValidationError, match="not an http"):
        Settings(qdrant_url="localhost:6333")
    with pytest.raises(ValidationError, match="qdrant_collection"):
        Settings(qdrant_collection="a/b")


def _down_store(
    timeout_s: int = 1, port: int | None = None, grpc: bool = False
) -> QdrantServerStore:
    url = f"http://127.0.0.1:{port or free_port()}"  # a free port: nothing listens there
    return QdrantServerStore.at_url(
        url, ServerOptions(), timeout_s=timeout_s, prefer_grpc=grpc, grpc_port=free_port()
    )


@pytest.mark.parametrize("grpc", [False, True], ids=["rest", "grpc"])
def test_a_server_that_is_down_is_unavailable_not_another_model(grpc: bool) -> None:
    store = _down_store(grpc=grpc)
    try:
        for call in (
            store.probe,
            lambda: store.ensure_collection(DIM, "m"),
            store.count,
            lambda: store.search_bm25("red", 3),
            lambda: store.product_points("p1"),
        ):
            with pytest.raises(StoreUnavailableError, match=r"could not .* now") as err:
                call()
            assert not isinstance(err.value, ModelMismatchError)
        # Liveness still answers: no points, and why.
        info = store.info()
        assert info.points == 0 and "could not" in info.extra["error"]
        assert store.dense_vectors() == DENSE_VECTORS
    finally:
        store.close()


@pytest.fixture()
def hung_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    server.close()


def test_a_server_that_times_out_is_unavailable_not_another_model(hung_port: int) -> None:
    store = _down_store(timeout_s=1, port=hung_port)
    try:
        with pytest.raises(StoreUnavailableError, match="could not be read now"):
            store.ensure_collection(DIM, "m")
    finally:
        store.close()


@pytest.fixture()
def local(tmp_path: Path) -> Iterator[QdrantServerStore]:
    store = QdrantServerStore.at_path(tmp_path / "q", ServerOptions(collection="shop"))
    yield store
    store.close()


def test_another_model_or_format_is_a_mismatch(local: QdrantServerStore) -> None:
    local.ensure_collection(DIM, "m1", ["red shirt"])
    local.upsert([_point(1)])
    with pytest.raises(ModelMismatchError, match="holds vectors of model m1"):
        local.ensure_collection(DIM, "m2")
    with pytest.raises(ModelMismatchError, match="instance dim"):
        local.ensure_collection(DIM, "m1", instance_dim=8)
    local.ensure_collection(DIM, "m1")  # the same model: kept as it is
    assert local.count() == 1

    meta = local.info()
    client = local._client
    old = {META_KEY: {"format": 1, "dim": DIM, "model_id": "m1", "bm25_avg_len": 3.0}}
    client.update_collection("shop", metadata=old)
    with pytest.raises(ModelMismatchError, match=r"older snapshop.*--replace-model"):
        local.ensure_collection(DIM, "m1")
    local.drop()
    local.ensure_collection(DIM, "m1")
    assert local.count() == 0 and local.info().model_id == meta.model_id


def test_a_collection_snapshop_did_not_make_is_never_taken_for_a_model_change(
    local: QdrantServerStore,
) -> None:
    client: QdrantClient = local._client
    vectors = models.VectorParams(size=3, distance=models.Distance.DOT)
    client.create_collection("shop", vectors_config=vectors)
    client.upsert("shop", [models.PointStruct(id=1, vector=[1.0, 0.0, 0.0])])
    with pytest.raises(StoreError, match="not made by snapshop") as err:
        local.ensure_collection(DIM, "m1")
    assert not isinstance(err.value, ModelMismatchError)
    with pytest.raises(StoreError, match="not made by snapshop"):
        local.probe()
    assert client.count("shop").count == 1


def test_an_absent_collection_reads_as_empty_and_asks_for_an_ingest(
    local: QdrantServerStore,
) -> None:
    assert local.count() == 0
    assert local.product_points("p1") == [] and list(local.scan(["product_id"])) == []
    assert local.facet("category", ["x"]) == []
    assert local.index_status().state == "empty"
    with pytest.raises(StoreError, match="snapshop ingest"):
        local.search_dense(np.ones(DIM, dtype=np.float32), 3)
    with pytest.raises(StoreError, match="snapshop ingest"):
        local.probe()


def test_local_mode_keeps_its_collection_and_allows_one_process(tmp_path: Path) -> None:
    first = QdrantServerStore.at_path(tmp_path / "q", ServerOptions())
    first.ensure_collection(DIM, "m1", ["red shirt", "blue jeans"])
    first.upsert([_point(i) for i in range(5)])
    with pytest.raises(StoreError, match="open in another process"):
        QdrantServerStore.at_path(tmp_path / "q", ServerOptions())
    avg = first.info().extra["bm25_avg_len"]
    first.close()
    again = QdrantServerStore.at_path(tmp_path / "q", ServerOptions())
    try:
        again.probe()
        assert again.count() == 5 and again.info().extra["bm25_avg_len"] == avg
        assert again.search_bm25("number3", 1)[0].payload["product_id"] == "p3"
    finally:
        again.close()


def test_a_new_collection_gets_the_configured_graph_and_searches_with_the_beam(
    tmp_path: Path,
) -> None:
    hnsw = HnswOptions(m=24, ef_construct=200, ef=300, full_scan_kb=700, ef_large=600, large_from=7)
    store = QdrantServerStore.at_path(tmp_path / "q", ServerOptions(hnsw=hnsw))
    # Local mode takes the graph config and ignores it (it has no graph): what is sent is checked.
    client = store._client
    created: list[dict[str, object]] = []
    sent: list[models.QueryRequest] = []
    create, query = client.create_collection, client.query_batch_points

    def spy_create(name: str, **kwargs: object) -> bool:
        created.append(kwargs)
        return create(name, **kwargs)  # type: ignore[arg-type]

    def spy_query(collection: str, requests: list[models.QueryRequest]) -> object:
        sent.extend(requests)
        return query(collection, requests)

    client.create_collection = spy_create  # type: ignore[method-assign]
    client.query_batch_points = spy_query  # type: ignore[method-assign]
    try:
        store.ensure_collection(DIM, "m1", ["red shirt"])
        store.upsert([_point(i) for i in range(5)])
        graph = created[0]["hnsw_config"]
        assert isinstance(graph, models.HnswConfigDiff)
        # The server's threshold is a sixteenth of the store's: the graph blocks' (as EdgeStore)
        assert (graph.m, graph.ef_construct, graph.full_scan_threshold) == (24, 200, 43)
        hit = store.search_dense(_point(2).image_vector, 1)[0]
        assert hit.payload["product_id"] == "p2"
        store.search_bm25("shirt", 1)
        assert sent[0].params is not None and sent[0].params.hnsw_ef == 300
        assert sent[0].params.acorn == models.AcornSearchParams(enable=True, max_selectivity=0.4)
        assert sent[1].params is None  # keywords have no graph
        # Seven points: a large collection for these options, seen at the next search.
        store.upsert([_point(i) for i in range(5, 7)])
        store.search_dense(_point(2).image_vector, 1)
        assert sent[2].params is not None
        assert (sent[2].params.hnsw_ef, sent[2].params.acorn) == (600, None)
    finally:
        store.close()


def test_a_filter_whose_matches_fit_the_threshold_is_scanned_and_recounted_after_writes(
    tmp_path: Path,
) -> None:
    # 1 KB: 64 vectors of 4 floats.
    store = QdrantServerStore.at_path(
        tmp_path / "q", ServerOptions(hnsw=HnswOptions(full_scan_kb=1))
    )
    client = store._client
    sent: list[models.QueryRequest] = []
    counted: list[object] = []
    query, count = client.query_batch_points, client.count

    def spy_query(collection: str, requests: list[models.QueryRequest]) -> object:
        sent.extend(requests)
        return query(collection, requests)

    def spy_count(collection: str, **kwargs: object) -> object:
        counted.append(kwargs.get("count_filter"))
        return count(collection, **kwargs)  # type: ignore[arg-type]

    client.query_batch_points = spy_query  # type: ignore[method-assign]
    client.count = spy_count  # type: ignore[method-assign]
    apparel = SearchFilter(category="apparel")

    def exact(flt: SearchFilter | None) -> bool:
        sent.clear()
        store.search_dense(_point(0).image_vector, 3, flt)
        params = sent[-1].params
        assert params is not None
        return bool(params.exact)

    try:
        store.ensure_collection(DIM, "m1", ["red shirt"])
        store.upsert([_point(i) for i in range(50)])  # 800 bytes of vectors
        assert (exact(apparel), exact(None)) == (True, False)
        filtered = len([c for c in counted if c is not None])
        assert exact(apparel) and len([c for c in counted if c is not None]) == filtered  # kept
        store.upsert([_point(i) for i in range(50, 100)])  # 1,600 bytes: walked, once recounted
        assert not exact(apparel)
        assert exact(SearchFilter(category="shoes"))  # matches nothing
    finally:
        store.close()
