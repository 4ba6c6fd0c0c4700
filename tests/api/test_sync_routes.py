"""POST /v1/admin/sync and GET /v1/admin/sync/{job}: the live sync's HTTP contract."""

from __future__ import annotations

import csv
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.settings import Settings
from tests.fakes import FakeEncoder
from tests.helpers import copy_data_dir

KEY = "sync-admin-key-0123456789"
ADMIN = {"X-API-Key": KEY}


class GatedEncoder(FakeEncoder):
    """Blocks image encoding until ``gate`` opens: a sync that stays running on demand."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        return super().encode_pixels(pixels)


@pytest.fixture()
def encoder() -> GatedEncoder:
    return GatedEncoder()


@pytest.fixture()
def client(fake_ingested_dir: Path, tmp_path: Path, encoder: GatedEncoder) -> Iterator[TestClient]:
    data = copy_data_dir(fake_ingested_dir, tmp_path / "data")
    settings = Settings(data_dir=data, admin_key=KEY)
    with TestClient(create_app(settings, encoder=encoder)) as c:  # type: ignore[arg-type]
        yield c


def _wait(client: TestClient, job: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body: dict = client.get(f"/v1/admin/sync/{job}", headers=ADMIN).json()
        if body["state"] not in ("queued", "running"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"sync {job} did not finish")


def _edited_catalog(mini_catalog: Path, root: Path) -> Path:
    """The mini catalog with its first product's title changed and its last product gone."""
    root.mkdir(parents=True)
    (root / "images").symlink_to(mini_catalog / "images")
    with (mini_catalog / "products.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames or []), list(reader)
    rows[0]["title"] = "Renamed wombat shirt"
    with (root / "products.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows[:-1])
    return root


def test_sync_needs_the_admin_key(client: TestClient, mini_catalog: Path) -> None:
    body = {"catalog": str(mini_catalog)}
    assert client.post("/v1/admin/sync", json=body).status_code == 401
    assert client.get("/v1/admin/sync/anything").status_code == 401


@pytest.mark.parametrize(
    ("catalog", "reason"),
    [
        ("/no/such/catalog", "catalog folder not found on the server: /no/such/catalog"),
        ("relative/catalog", "catalog must be an absolute path"),
        ("/", "no products.csv or products.jsonl"),
    ],
)
def test_bad_catalogs_get_422_naming_the_path(
    client: TestClient, catalog: str, reason: str
) -> None:
    resp = client.post("/v1/admin/sync", json={"catalog": catalog}, headers=ADMIN)
    assert resp.status_code == 422
    assert reason in resp.json()["detail"]


def test_unknown_options_and_jobs(client: TestClient, mini_catalog: Path) -> None:
    body = {"catalog": str(mini_catalog), "prnue": True}
    assert client.post("/v1/admin/sync", json=body, headers=ADMIN).status_code == 422
    body = {"catalog": str(mini_catalog), "batch_size": 0}
    assert client.post("/v1/admin/sync", json=body, headers=ADMIN).status_code == 422
    resp = client.get("/v1/admin/sync/nope", headers=ADMIN)
    assert resp.status_code == 404 and "nope" in resp.json()["detail"]


def test_one_sync_at_a_time_while_searches_go_on(
    client: TestClient, encoder: GatedEncoder, mini_catalog: Path, tmp_path: Path
) -> None:
    catalog = _edited_catalog(mini_catalog, tmp_path / "edited")
    encoder.gate.clear()
    started = client.post(
        "/v1/admin/sync", json={"catalog": str(catalog), "prune": True}, headers=ADMIN
    )
    assert started.status_code == 202
    job = started.json()["job"]
    assert client.get(f"/v1/admin/sync/{job}", headers=ADMIN).json()["state"] == "running"

    busy = client.post("/v1/admin/sync", json={"catalog": str(catalog)}, headers=ADMIN)
    assert busy.status_code == 409
    assert job in busy.json()["detail"] and "one sync at a time" in busy.json()["detail"]

    # Searches run while the sync waits inside the model: the store is not held by it.
    before = client.get("/v1/search", params={"q": "wombat"})
    assert before.status_code == 200
    assert "Renamed wombat shirt" not in [r["title"] for r in before.json()["results"]]

    encoder.gate.set()
    done = _wait(client, job)
    assert done["state"] == "done", done
    counts = done["result"]["counts"]
    assert (counts["updated"], counts["deleted"], counts["products"]) == (1, 1, 49)
    assert done["progress"] == {"images_done": 1, "images_total": 1}
    assert done["result"]["summary"] == "ingested 49 products, 49 images, 0 rejected"
    after = client.get("/v1/search", params={"q": "wombat"}).json()["results"]
    assert after[0]["title"] == "Renamed wombat shirt"
    runs = client.get("/v1/admin/indexers", headers=ADMIN).json()["runs"]
    assert {"run": done["result"]["run"], "state": "ok"}.items() <= next(
        r for r in runs if r["run"] == done["result"]["run"]
    ).items()

    again = client.post("/v1/admin/sync", json={"catalog": str(catalog)}, headers=ADMIN)
    assert again.status_code == 202  # the slot is free once the first is done
    assert _wait(client, again.json()["job"])["result"]["counts"]["unchanged"] == 49


def test_a_failed_sync_is_reported_and_the_server_goes_on(
    client: TestClient, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "products.csv").write_bytes(b"\xff\xfe not a csv header")
    resp = client.post("/v1/admin/sync", json={"catalog": str(bad)}, headers=ADMIN)
    assert resp.status_code == 202
    done = _wait(client, resp.json()["job"])
    assert done["state"] == "failed" and done["error"]
    assert client.get("/v1/search", params={"q": "shirt"}).status_code == 200


def test_a_sync_that_needs_an_index_builds_it_apart_and_serves_it(
    tmp_path: Path, mini_catalog: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A server on an empty data dir, with a 1 KB indexing threshold: the first sync's points
    # pass it, so the sync builds the HNSW index, on a copy in a child process
    # (app/store/edge_apart.py), and swaps it in.
    settings = Settings(data_dir=tmp_path / "data", admin_key=KEY, index_threshold_kb=1)
    with (
        caplog.at_level(logging.INFO, logger="app.store.edge"),
        TestClient(create_app(settings, encoder=FakeEncoder())) as c,  # type: ignore[arg-type]
    ):
        resp = c.post("/v1/admin/sync", json={"catalog": str(mini_catalog)}, headers=ADMIN)
        assert resp.status_code == 202
        done = _wait(c, resp.json()["job"])
        assert done["state"] == "done", done
        assert done["result"]["index"].startswith("HNSW ready"), done["result"]["index"]
        store = c.get("/healthz").json()["store"]
        assert store["points"] == 50 and store["indexed_vectors"] == 150, store  # every vector
        with (mini_catalog / "products.csv").open(newline="") as fh:
            first = next(csv.DictReader(fh))
        hits = c.get("/v1/search", params={"q": first["title"]}).json()["results"]
        assert hits and hits[0]["title"] == first["title"]
    assert any("index built apart and swapped in" in r.getMessage() for r in caplog.records)
    store_dir = settings.store_dir
    assert (store_dir / "shard").is_dir()
    assert not (store_dir / "shard.building").exists() and not (store_dir / "shard.old").exists()
