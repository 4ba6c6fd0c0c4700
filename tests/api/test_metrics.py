"""/metrics after real traffic: a live sync, text and photo searches, errors of every layer;
the scrape is parsed with prometheus_client's own parser and every family is checked against
what the test did."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from app.api.main import create_app
from app.search.encode import QueryEmbedder, query_views
from app.settings import Settings
from tests.fakes import FakeEncoder

KEY = "metrics-admin-key-0123456789"
ADMIN = {"X-API-Key": KEY}
MAX_BODY_KB = 4
SEARCHES_TEXT = 3
SEARCHES_PHOTO = 2


def _samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``; 0 when there is none."""
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


def _total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


@pytest.fixture(scope="module")
def scraped(
    tmp_path_factory: pytest.TempPathFactory, mini_catalog: Path
) -> Iterator[tuple[list[Sample], int]]:
    """A server started on an empty data dir, synced with the mini catalog (50 products) over
    the admin API, then searched; its scrape (parsed) and the store's point count."""
    data = tmp_path_factory.mktemp("metrics") / "data"
    settings = Settings(data_dir=data, admin_key=KEY, max_body_kb=MAX_BODY_KB)
    with TestClient(create_app(settings, encoder=FakeEncoder())) as c:  # type: ignore[arg-type]
        job = c.post("/v1/admin/sync", json={"catalog": str(mini_catalog)}, headers=ADMIN)
        assert job.status_code == 202
        deadline = time.monotonic() + 60
        while (state := c.get(f"/v1/admin/sync/{job.json()['job']}", headers=ADMIN).json())[
            "state"
        ] in ("queued", "running"):
            assert time.monotonic() < deadline, "the sync did not finish"
            time.sleep(0.05)
        assert state["state"] == "done", state

        for q in ("shirt", "navy shirt", "rice")[:SEARCHES_TEXT]:
            assert c.get("/v1/search", params={"q": q}).status_code == 200
        photo = next((mini_catalog / "images").iterdir()).read_bytes()
        for _ in range(SEARCHES_PHOTO):
            resp = c.post("/v1/search", files={"image": ("p.jpg", photo, "image/jpeg")})
            assert resp.status_code == 200
        product = c.get("/v1/search", params={"q": "shirt"}).json()["results"][0]["product_id"]
        assert c.get(f"/v1/products/{product}").status_code == 200
        assert c.get("/v1/products/no-such-product").status_code == 404
        assert c.get("/v1/search", params={"q": "shirt", "k": 0}).status_code == 422
        # refused by the body-limit middleware before any route runs
        big = {"positive": ["x" * (MAX_BODY_KB * 1024)]}
        assert c.post("/v1/search/examples", json=big).status_code == 413
        assert c.get("/no/such/path").status_code == 404
        points = c.get("/healthz").json()["store"]["points"]

        scrape = c.get("/metrics")
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
        yield _samples(scrape.text), points


def test_requests_are_counted_by_route_template_and_status(
    scraped: tuple[list[Sample], int],
) -> None:
    samples, _ = scraped
    requests = "snapshop_http_requests_total"
    assert _value(samples, requests, method="GET", route="/v1/search", status="200") == (
        SEARCHES_TEXT + 1
    )
    assert _value(samples, requests, method="POST", route="/v1/search", status="200") == (
        SEARCHES_PHOTO
    )
    assert _value(samples, requests, route="/v1/products/{product_id}", status="200") == 1
    assert _value(samples, requests, route="/v1/products/{product_id}", status="404") == 1
    assert _value(samples, requests, route="unmatched", status="404") == 1
    # a path's own values never become labels: the cardinality stays that of the routes
    routes = {s.labels["route"] for s in samples if s.name == requests}
    assert not any("no-such-product" in r or "/no/such" in r for r in routes), routes

    errors = "snapshop_http_errors_total"
    assert _value(samples, errors, route="/v1/search", status="422") == 1
    assert _value(samples, errors, route="/v1/search/examples", status="413") == 1
    assert _total(samples, errors, status="404") == 2
    assert _total(samples, errors) == 4  # and no 2xx among them

    count = "snapshop_http_request_duration_seconds_count"
    assert _value(samples, count, method="GET", route="/v1/search") == SEARCHES_TEXT + 2
    bucket = "snapshop_http_request_duration_seconds_bucket"
    assert _value(samples, bucket, method="GET", route="/v1/search", le="+Inf") == (
        SEARCHES_TEXT + 2
    )
    assert _value(samples, "snapshop_http_requests_in_flight") == 1  # the scrape itself


def test_search_legs_stages_and_encoder_runs_are_timed(
    scraped: tuple[list[Sample], int],
) -> None:
    samples, _ = scraped
    searches = SEARCHES_TEXT + 1 + SEARCHES_PHOTO
    legs = "snapshop_search_leg_seconds_count"
    for leg in ("text_image", "text_text", "bm25"):
        assert _value(samples, legs, leg=leg) == SEARCHES_TEXT + 1, leg
    for leg in ("image", "image_text"):
        assert _value(samples, legs, leg=leg) == SEARCHES_PHOTO, leg
    assert _value(samples, legs, leg="image_instance") == 0  # the fake model has no instance

    stages = "snapshop_search_stage_seconds_count"
    assert _value(samples, stages, stage="total") == searches
    assert _value(samples, stages, stage="embed_text") == SEARCHES_TEXT + 1
    assert _value(samples, stages, stage="decode") == SEARCHES_PHOTO
    assert _value(samples, "snapshop_search_stage_seconds_sum", stage="total") > 0

    # one model run per typed query (batch 1); one per photo, of all its views
    views = len(query_views(Image.new("RGB", (8, 8))))
    size = "snapshop_encoder_batch_size"
    assert _value(samples, f"{size}_count", tower="text") == SEARCHES_TEXT + 1
    assert _value(samples, f"{size}_sum", tower="text") == SEARCHES_TEXT + 1
    assert _value(samples, f"{size}_count", tower="image") == SEARCHES_PHOTO
    assert _value(samples, f"{size}_sum", tower="image") == views * SEARCHES_PHOTO
    seconds = "snapshop_encoder_batch_duration_seconds_count"
    assert _value(samples, seconds, tower="image") == SEARCHES_PHOTO


def test_ingest_counters_and_store_size(scraped: tuple[list[Sample], int]) -> None:
    samples, points = scraped
    assert _value(samples, "snapshop_ingest_runs_total", outcome="done") == 1
    assert _value(samples, "snapshop_ingest_runs_total", outcome="failed") == 0
    assert _value(samples, "snapshop_ingest_products_total", change="added") == 50
    assert _value(samples, "snapshop_ingest_products_total", change="unchanged") == 0
    assert _value(samples, "snapshop_ingest_images_embedded_total") == points
    assert _value(samples, "snapshop_ingest_images_processed_total") >= points
    assert _value(samples, "snapshop_ingest_points_written_total") == points

    assert _value(samples, "snapshop_store_up") == 1
    assert _value(samples, "snapshop_store_points") == points
    assert _value(samples, "snapshop_store_products") == 50
    assert _value(samples, "snapshop_model_info", model=FakeEncoder.model_id) == 1


def test_openmetrics_when_asked(fake_ingested_dir: Path, fake_encoder: FakeEncoder) -> None:
    settings = Settings(data_dir=fake_ingested_dir)
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        resp = c.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/openmetrics-text")
        assert resp.text.rstrip().endswith("# EOF")
        assert "snapshop_store_points 50" in resp.text


class _Recorder:
    def __init__(self) -> None:
        self.runs: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def search_timings(self, timings_ms: object) -> None:
        pass

    def encoder_batch(self, tower: str, size: int, seconds: float) -> None:
        assert seconds >= 0
        with self.lock:
            self.runs.append((tower, size))


def test_micro_batched_runs_report_their_batch_sizes(fake_encoder: FakeEncoder) -> None:
    """Concurrent typed queries share model runs: every query is in exactly one reported run,
    however the batcher grouped them."""
    embedder = QueryEmbedder(fake_encoder, micro_batch=True)
    recorder = _Recorder()
    embedder.observer = recorder
    try:
        threads = [
            threading.Thread(target=embedder.text, args=(f"query {i}", {})) for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
    finally:
        embedder.close()
    assert {tower for tower, _ in recorder.runs} == {"text"}
    assert sum(size for _, size in recorder.runs) == 8
    assert 1 <= len(recorder.runs) <= 8
