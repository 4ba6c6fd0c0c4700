"""/readyz against /healthz: a store that cannot be read makes the server unready, not dead,
and it turns ready again by itself once the store is back."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.api.main import create_app
from app.settings import Settings
from tests.fakes import FakeEncoder
from tests.helpers import copy_data_dir


def test_unreadable_store_is_unready_then_recovers_without_a_restart(
    fake_ingested_dir: Path, tmp_path: Path, fake_encoder: FakeEncoder
) -> None:
    data = copy_data_dir(fake_ingested_dir, tmp_path / "data")
    settings = Settings(data_dir=data)
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "points": 50}

        # The volume goes away (an unmount, a failed disk): the open shard's file handles
        # would hide it, the probe does not. Tests run as root, so a chmod would not stop
        # them reading; moving the folder away is what they can do.
        away = data / "qdrant.away"
        settings.store_dir.rename(away)
        unready = c.get("/readyz")
        assert unready.status_code == 503
        assert unready.json()["status"] == "unavailable"
        assert str(settings.store_dir) in unready.json()["detail"]
        assert c.get("/healthz").status_code == 200  # alive: do not restart it

        away.rename(settings.store_dir)
        back = c.get("/readyz")
        assert back.status_code == 200 and back.json()["points"] == 50
        assert c.get("/v1/search", params={"q": "shirt"}).status_code == 200


def test_an_empty_store_is_not_ready(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    settings = Settings(data_dir=tmp_path / "empty")
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        resp = c.get("/readyz")
        assert resp.status_code == 503 and "snapshop ingest" in resp.json()["detail"]
        assert c.get("/healthz").status_code == 200
