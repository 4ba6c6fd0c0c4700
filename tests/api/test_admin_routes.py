"""/v1/admin/indexers: admin key checks and the indexer health it reports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.api.main import create_app
from app.settings import Settings
from tests.fakes import FakeEncoder

KEY = "k3y-for-tests-0123456789"


@pytest.fixture(scope="module")
def client(fake_ingested_dir: Path, fake_encoder: FakeEncoder) -> Iterator[TestClient]:
    settings = Settings(data_dir=fake_ingested_dir, admin_key=KEY)
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        yield c


def test_indexers_need_the_admin_key(client: TestClient) -> None:
    missing = client.get("/v1/admin/indexers")
    assert missing.status_code == 401
    assert "X-API-Key" in missing.json()["detail"]
    for wrong in ("nope", KEY[:-1], KEY + "x", KEY.upper()):
        assert client.get("/v1/admin/indexers", headers={"X-API-Key": wrong}).status_code == 401


def test_indexers_report_the_last_ingest_run(client: TestClient, mini_catalog: Path) -> None:
    body = client.get("/v1/admin/indexers", headers={"X-API-Key": KEY}).json()
    (indexer,) = body["indexers"]
    assert indexer["catalog"] == str(mini_catalog.resolve())
    assert indexer["state"] == "ok" and indexer["healthy"] is True
    last = indexer["last_run"]
    assert last["counts"]["products"] == 50 and last["counts"]["added"] == 50
    assert last["images_per_s"] > 0 and last["seconds"] > 0
    assert last["started_at"] <= last["ended_at"]
    assert last["errors"] == 0 and last["last_error"] is None
    assert body["runs"][0]["run"] == last["run"]
    assert body["index"]["state"] == "exact"


def test_admin_api_is_off_without_a_key(fake_ingested_dir: Path, fake_encoder: FakeEncoder) -> None:
    settings = Settings(data_dir=fake_ingested_dir / "elsewhere")
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        response = c.get("/v1/admin/indexers", headers={"X-API-Key": "anything"})
    assert response.status_code == 403
    assert "SNAPSHOP_ADMIN_KEY" in response.json()["detail"]


@pytest.mark.parametrize("key", [None, "change-me", "short-key", "CHANGEME"])
def test_production_refuses_a_missing_or_placeholder_key(key: str | None) -> None:
    with pytest.raises(ValidationError, match="SNAPSHOP_ADMIN_KEY"):
        Settings(env="production", admin_key=key)


def test_production_accepts_a_real_key() -> None:
    settings = Settings(env="production", admin_key=KEY)
    assert settings.admin_key is not None and settings.admin_key.get_secret_value() == KEY
    assert KEY not in repr(settings)  # never logged by accident
