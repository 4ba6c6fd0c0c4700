"""End to end through the API: the Qdrant server backend chosen by the environment alone.

Two apps are made from the environment only, as ``snapshop serve`` makes one: the embedded
engine (``SNAPSHOP_DATA_DIR``), and the server backend (``SNAPSHOP_QDRANT_PATH`` too:
qdrant-client's local mode standing in for ``SNAPSHOP_QDRANT_URL``, the same backend and client
API). Each fills its store with the same catalog through the admin sync route; then the server
app must answer as the embedded one: each leg on its own (raw scores, ties allowed), fused
searches, filters, floors, facets, similar products and search by examples.

Fusion is by rank, so two engines that order tied scores differently fuse differently: the
fused comparisons leave out BM25 (short product texts tie often; its own comparison allows
ties) and use an encoder whose text vectors do not tie.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.store import Hit
from tests.fakes import FakeEncoder
from tests.store.congruence import TOLERANCE, assert_same_hits

KEY = "server-backend-admin-key-0123"
ADMIN = {"X-API-Key": KEY}
TEXT_LEGS = ("text_image", "text_text", "bm25")
IMAGE_LEGS = ("image", "image_text")


class TieFreeEncoder(FakeEncoder):
    """``FakeEncoder`` whose text vectors carry a small fixed offset per text: texts that share
    no word are no longer all at cosine 0 to each other (a tie for every one of them)."""

    def encode_texts(self, texts: Any) -> np.ndarray:
        out = super().encode_texts(texts)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
            out[row] += 0.05 * np.random.default_rng(seed).normal(size=out.shape[1])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def encoder() -> TieFreeEncoder:
    return TieFreeEncoder()


def _app_from_env(
    root: Path, env: dict[str, str], encoder: FakeEncoder, catalog: Path
) -> Iterator[TestClient]:
    """An app made from ``env`` (and nothing else), its store filled through the sync route."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SNAPSHOP_DATA_DIR", str(root / "data"))
        patch.setenv("SNAPSHOP_ADMIN_KEY", KEY)
        for name, value in env.items():
            patch.setenv(name, value)
        # No settings passed: the app reads the environment, as `snapshop serve` does.
        app = create_app(encoder=encoder)  # type: ignore[arg-type]
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 503  # nothing ingested yet
        started = c.post("/v1/admin/sync", json={"catalog": str(catalog)}, headers=ADMIN)
        assert started.status_code == 202, started.text
        job = started.json()["job"]
        deadline = time.monotonic() + 60
        while (state := c.get(f"/v1/admin/sync/{job}", headers=ADMIN).json())["state"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        assert state["state"] == "done", state
        yield c


@pytest.fixture(scope="module")
def edge(
    tmp_path_factory: pytest.TempPathFactory, encoder: TieFreeEncoder, mini_catalog: Path
) -> Iterator[TestClient]:
    yield from _app_from_env(tmp_path_factory.mktemp("edge_backend"), {}, encoder, mini_catalog)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, encoder: TieFreeEncoder, mini_catalog: Path
) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("server_backend")
    env = {"SNAPSHOP_QDRANT_PATH": str(root / "qdrant-local"), "SNAPSHOP_QDRANT_COLLECTION": "shop"}
    yield from _app_from_env(root, env, encoder, mini_catalog)


def test_the_environment_chose_the_backend(server: TestClient, edge: TestClient) -> None:
    store = server.get("/healthz").json()["store"]
    assert store["backend"] == "qdrant-local"
    assert edge.get("/healthz").json()["store"]["backend"] == "qdrant-edge"
    assert store["points"] == edge.get("/healthz").json()["store"]["points"] == 50
    ready = server.get("/readyz").json()
    assert ready == {"status": "ready", "points": 50, "model": ready["model"]}
    assert ready["model"] == edge.get("/readyz").json()["model"]


def _rows(mini_catalog: Path) -> list[dict[str, str]]:
    with (mini_catalog / "products.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _leg_hits(body: dict[str, Any], leg: str) -> list[Hit]:
    """A one-leg answer as hits: product, the leg's raw score, what the result shows."""
    return [
        Hit(
            r["product_id"],
            r["explain"][leg]["score"],
            {"title": r["title"], "category": r["category"], "price": r["price"]},
        )
        for r in body["results"]
    ]


def _both(edge: TestClient, server: TestClient, **kwargs: Any) -> tuple[dict, dict]:
    a, b = edge.post("/v1/search", **kwargs), server.post("/v1/search", **kwargs)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    return a.json(), b.json()


def _assert_same_fused(a: dict[str, Any], b: dict[str, Any]) -> None:
    """The same page: products, fused scores, what each shows and which photos matched."""
    keep = ("product_id", "title", "category", "price", "image", "matched_images", "ranks")
    assert [{k: r[k] for k in keep} for r in b["results"]] == [
        {k: r[k] for k in keep} for r in a["results"]
    ]
    for x, y in zip(a["results"], b["results"], strict=True):
        assert y["score"] == pytest.approx(x["score"], abs=TOLERANCE)
    assert b["legs"] == a["legs"]


def test_every_leg_alone_ranks_alike(
    edge: TestClient, server: TestClient, mini_catalog: Path
) -> None:
    rows = _rows(mini_catalog)
    texts = [" ".join(r["title"].split()[:2]) for r in rows[::5]]
    filters: list[dict[str, Any] | None] = [
        None,
        {"category": "Apparel"},
        {"attributes": {"gender": "Men"}, "category": "apparel/topwear"},
    ]
    compared = 0
    for text in texts:
        for flt in filters:
            for leg in TEXT_LEGS:
                fusion = {"weights": {other: 0 for other in TEXT_LEGS if other != leg}}
                body = {"q": text, "k": 20, "explain": True, "fusion": fusion, "filters": flt}
                a, b = _both(edge, server, json=body)
                want, got = _leg_hits(a, leg), _leg_hits(b, leg)
                assert_same_hits(want, got, 20, f"{leg} {text!r} {flt}")
                compared += len(want)
    for row in rows[1::9]:
        photo = (mini_catalog / "images" / row["image_files"].split(";")[0]).read_bytes()
        for leg in IMAGE_LEGS:
            fusion = {"weights": {other: 0 for other in IMAGE_LEGS if other != leg}}
            form = {"k": "20", "explain": "true", "fusion": json.dumps(fusion)}
            files = {"image": ("q.jpg", photo, "image/jpeg")}
            a, b = _both(edge, server, data=form, files=files)
            assert_same_hits(_leg_hits(a, leg), _leg_hits(b, leg), 20, f"{leg} {row['title']}")
            if leg == "image":  # its own photo first
                assert b["results"][0]["product_id"] == row["product_id"]
            compared += len(a["results"])
    assert compared > 400


def test_fused_searches_filters_floors_and_facets_agree(
    edge: TestClient, server: TestClient, mini_catalog: Path
) -> None:
    rows = _rows(mini_catalog)
    photo = (mini_catalog / "images" / rows[7]["image_files"].split(";")[0]).read_bytes()
    no_bm25 = {"weights": {"bm25": 0}}
    floors = {"weights": {"bm25": 0}, "floors": {"text_text": 0.3, "text_image": 0.05}}
    bodies: list[dict[str, Any]] = [
        {"q": "shirt", "k": 10, "facets": True, "fusion": no_bm25},
        {"q": "blue cotton", "k": 10, "category": "Apparel", "fusion": no_bm25},
        {"q": rows[3]["title"], "k": 5, "offset": 2, "fusion": no_bm25},
        {"q": "black shirt", "k": 10, "fusion": floors, "explain": True},
        {"q": "shoes", "k": 10, "fusion": no_bm25, "filters": {"attributes": {"gender": "Men"}}},
    ]
    for body in bodies:
        a, b = _both(edge, server, json=body)
        assert b["results"], body
        _assert_same_fused(a, b)
        assert b.get("facets") == a.get("facets")
        if body["fusion"] is floors:  # no hit under its leg's floor counted
            for r in b["results"]:
                for leg, score in r["explain"].items():
                    assert score["score"] >= floors["floors"][leg], (r["product_id"], leg)
    form = {"q": rows[7]["title"], "k": "10", "facets": "true", "fusion": json.dumps(no_bm25)}
    a, b = _both(edge, server, data=form, files={"image": ("q.jpg", photo, "image/jpeg")})
    _assert_same_fused(a, b)
    assert b["predicted_category"] == a["predicted_category"]
    assert b["facets"] == a["facets"] and b["facets"]["category"]


def test_products_similar_and_examples_agree(
    edge: TestClient, server: TestClient, mini_catalog: Path
) -> None:
    rows = _rows(mini_catalog)
    pid = rows[4]["product_id"]
    assert server.get(f"/v1/products/{pid}").json() == edge.get(f"/v1/products/{pid}").json()
    assert server.get("/v1/products/no-such-product").status_code == 404
    for params in ({"k": 8}, {"k": 5, "category": "Apparel"}):
        a = edge.get(f"/v1/products/{pid}/similar", params=params).json()
        b = server.get(f"/v1/products/{pid}/similar", params=params).json()
        _assert_same_fused(a, b)
        assert pid not in [r["product_id"] for r in b["results"]]
    body = {
        "positive": [rows[0]["product_id"], rows[10]["product_id"]],
        "negative": [rows[45]["product_id"]],
        "k": 10,
    }
    a = edge.post("/v1/search/examples", json=body).json()
    b = server.post("/v1/search/examples", json=body).json()
    _assert_same_fused(a, b)


def test_products_ingested_beside_the_api_are_served_without_a_restart(
    tmp_path: Path, encoder: TieFreeEncoder, mini_catalog: Path
) -> None:
    """The API keeps no catalog state of its own: products another ingest writes are searched,
    shown, counted by /readyz and /metrics at once.

    The other ingest is a store client of its own (its own object, cached collection metadata
    and locks, as a separate ``snapshop ingest`` process has), over the API's qdrant-client:
    local mode admits one client per folder. Two processes on one Qdrant server, what this
    stands for, could not run here (no Qdrant server can be started in CI).
    """
    from contextlib import contextmanager

    from app.api.serving import Live
    from ingestion.pipeline import ingest_catalog
    from tests.helpers import write_catalog

    rows = _rows(mini_catalog)
    with (mini_catalog / "products.csv").open(newline="") as fh:
        fields = list(csv.DictReader(fh).fieldnames or [])
    half = write_catalog(tmp_path / "half", mini_catalog, fields, rows[:25])
    env = {"SNAPSHOP_QDRANT_PATH": str(tmp_path / "qdrant-local")}
    with contextmanager(_app_from_env)(tmp_path, env, encoder, half) as c:
        assert c.get("/readyz").json()["points"] == 25
        assert "snapshop_store_products 25.0" in c.get("/metrics").text
        late = rows[-1]
        assert c.get(f"/v1/products/{late['product_id']}").status_code == 404

        live: Live = c.app.state.live  # type: ignore[attr-defined]
        other = live.collections.open()  # through the alias, as `snapshop ingest` opens it
        try:
            report = ingest_catalog(mini_catalog, other, encoder)
        finally:
            other.close()
        assert report.added == 25

        assert c.get(f"/v1/products/{late['product_id']}").json()["title"] == late["title"]
        found = c.get("/v1/search", params={"q": late["title"], "k": 50}).json()["results"]
        assert late["product_id"] in [r["product_id"] for r in found]
        assert c.get("/readyz").json()["points"] == 50
        assert "snapshop_store_products 50.0" in c.get("/metrics").text
