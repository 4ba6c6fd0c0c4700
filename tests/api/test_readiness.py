"""/readyz against /healthz: a store that cannot be read, or a model that cannot embed, makes
the server unready (a problem+json 503 naming the reason), not dead, and it turns ready again
by itself once the cause is gone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

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
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "points": 50, "model": fake_encoder.model_id}

        # The volume goes away (an unmount, a failed disk): the open shard's file handles
        # would hide it, the probe does not. Tests run as root, so a chmod would not stop
        # them reading; moving the folder away is what they can do.
        away = data / "qdrant.away"
        settings.store_dir.rename(away)
        unready = c.get("/readyz")
        assert unready.status_code == 503
        assert unready.headers["content-type"] == "application/problem+json"
        assert unready.headers["retry-after"] == "5"
        assert unready.json()["status"] == 503
        assert str(settings.store_dir) in unready.json()["detail"]
        assert c.get("/healthz").status_code == 200  # alive: do not restart it
        scrape = c.get("/metrics")  # the scrape still works, and says the store is down
        assert scrape.status_code == 200
        assert "snapshop_store_up 0.0" in scrape.text.splitlines()
        assert "snapshop_store_points" not in scrape.text

        away.rename(settings.store_dir)
        back = c.get("/readyz")
        assert back.status_code == 200 and back.json()["points"] == 50
        assert "snapshop_store_up 1.0" in c.get("/metrics").text.splitlines()
        assert c.get("/v1/search", params={"q": "shirt"}).status_code == 200


def test_an_empty_store_is_not_ready(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    settings = Settings(data_dir=tmp_path / "empty")
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        resp = c.get("/readyz")
        assert resp.status_code == 503 and "snapshop ingest" in resp.json()["detail"]
        assert c.get("/healthz").status_code == 200


class _BrokenTowers(FakeEncoder):
    """The fake encoder whose image tower fails while ``broken`` is set (a lost GPU, say)."""

    broken = False

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if self.broken:
            raise RuntimeError("CUDA error: device lost")
        return super().encode_images(images)


def test_a_model_that_cannot_embed_is_not_ready(fake_ingested_dir: Path) -> None:
    encoder = _BrokenTowers()
    encoder.broken = True
    settings = Settings(data_dir=fake_ingested_dir)
    with TestClient(create_app(settings, encoder=encoder)) as c:  # type: ignore[arg-type]
        resp = c.get("/readyz")
        assert resp.status_code == 503
        problem = resp.json()
        assert "cannot embed" in problem["detail"] and "device lost" in problem["detail"]
        assert encoder.model_id in problem["detail"]
        assert problem["request_id"] == resp.headers["x-request-id"]
        assert c.get("/healthz").status_code == 200

        encoder.broken = False  # a failure is not remembered: ready at the next ask
        assert c.get("/readyz").status_code == 200
        encoder.broken = True  # a success is, for a while: no model run per probe
        assert c.get("/readyz").status_code == 200
