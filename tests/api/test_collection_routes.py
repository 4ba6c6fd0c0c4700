"""/v1/admin/collections and the sync's new_collection: what is refused, and how.

The swap itself, under load and on both backends, is tests/e2e/test_model_swap.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.api.serving import Live
from app.settings import Settings
from app.store import PointRecord, point_id
from tests.fake_serve import FakeModels, write_fake_bundle
from tests.fakes import FakeEncoder, NarrowFakeEncoder
from tests.helpers import copy_data_dir

KEY = "collections-admin-key-0123456789"
ADMIN = {"X-API-Key": KEY}


@pytest.fixture()
def client(
    fake_ingested_dir: Path, tmp_path: Path, fake_encoder: FakeEncoder
) -> Iterator[TestClient]:
    data = copy_data_dir(fake_ingested_dir, tmp_path / "data")
    settings = Settings(data_dir=data, admin_key=KEY, swap_poll_s=0)
    app = create_app(settings, encoder=fake_encoder, models=FakeModels(settings))  # type: ignore[arg-type]
    with TestClient(app) as c:
        yield c


def _narrow_collection(client: TestClient, points: int, bundle: str) -> str:
    """A collection of ``NarrowFakeEncoder``'s model beside the live one."""
    live: Live = client.app.state.live  # type: ignore[attr-defined]
    name = live.collections.collection_for(NarrowFakeEncoder.model_id)
    dim = NarrowFakeEncoder.dim
    with closing(live.collections.open(name)) as store:
        store.ensure_collection(dim, NarrowFakeEncoder.model_id, ["a shirt"], bundle=bundle)
        store.upsert(
            [
                PointRecord(
                    point_id(f"p{i}", "a.jpg"),
                    np.ones(dim, np.float32),
                    np.ones(dim, np.float32),
                    "a shirt",
                    {"product_id": f"p{i}"},
                )
                for i in range(points)
            ]
        )
    return name


def test_the_collection_routes_need_the_admin_key(client: TestClient) -> None:
    assert client.get("/v1/admin/collections").status_code == 401
    assert client.post("/v1/admin/collections/swap", json={"collection": "x"}).status_code == 401
    assert client.delete("/v1/admin/collections/default").status_code == 401


def test_unknown_live_empty_and_model_less_collections_are_refused(
    client: TestClient, tmp_path: Path
) -> None:
    listed = client.get("/v1/admin/collections", headers=ADMIN).json()
    assert listed["live"] == "default"
    assert listed["collections"][0]["points"] == 50  # counted through the served store

    unknown = client.post("/v1/admin/collections/swap", json={"collection": "nope"}, headers=ADMIN)
    assert unknown.status_code == 404 and "no collection 'nope'" in unknown.json()["detail"]
    assert client.delete("/v1/admin/collections/nope", headers=ADMIN).status_code == 404
    bad = client.post("/v1/admin/collections/swap", json={"collection": "../x"}, headers=ADMIN)
    assert bad.status_code == 404 and "not a collection name" in bad.json()["detail"]
    live = client.delete("/v1/admin/collections/default", headers=ADMIN)
    assert live.status_code == 409 and "live collection" in live.json()["detail"]

    bundle = write_fake_bundle(tmp_path / "narrow", "narrow")
    empty = _narrow_collection(client, 0, str(bundle))
    refused = client.post("/v1/admin/collections/swap", json={"collection": empty}, headers=ADMIN)
    assert refused.status_code == 409 and "holds no points" in refused.json()["detail"]

    _narrow_collection(client, 3, str(bundle))  # points now, and its bundle gone
    shutil.rmtree(bundle)
    lost = client.post("/v1/admin/collections/swap", json={"collection": empty}, headers=ADMIN)
    assert lost.status_code == 409 and "no model bundle" in lost.json()["detail"]
    # nothing changed: the old collection and model still answer
    assert client.get("/v1/admin/collections", headers=ADMIN).json()["live"] == "default"
    answer = client.get("/v1/search", params={"q": "shirt"}).json()
    assert answer["model"] == FakeEncoder.model_id and answer["results"]
    assert client.delete(f"/v1/admin/collections/{empty}", headers=ADMIN).json() == {
        "dropped": empty
    }


def test_a_new_collection_sync_needs_an_absolute_bundle(
    client: TestClient, mini_catalog: Path
) -> None:
    for body, reason in (
        ({"new_collection": True}, "new_collection needs model"),
        ({"model": "/tmp"}, "only for new_collection"),
        ({"new_collection": True, "model": "/x", "replace_model": True}, "no replace_model"),
        ({"new_collection": True, "model": "relative/bundle"}, "absolute path of a bundle"),
    ):
        r = client.post(
            "/v1/admin/sync", json={"catalog": str(mini_catalog), **body}, headers=ADMIN
        )
        assert r.status_code == 422 and reason in r.text, (body, r.text)
