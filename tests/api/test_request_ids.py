"""Request ids and access lines: every response names its request in ``X-Request-ID`` (a sane
incoming id is kept), problem bodies repeat it, and each request is logged once with it, its
route template, status and duration."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from app.api.main import create_app
from app.observability.logs import ACCESS_LOGGER, JsonFormatter, RequestIdFilter
from app.settings import Settings
from tests.fakes import FakeEncoder

GENERATED = re.compile(r"[0-9a-f]{32}")


def _boom() -> None:
    raise RuntimeError("a bug the handlers do not know")


@pytest.fixture(scope="module")
def app(fake_ingested_dir: Path, fake_encoder: FakeEncoder) -> FastAPI:
    settings = Settings(data_dir=fake_ingested_dir, max_upload_mb=0.05)
    app = create_app(settings, encoder=fake_encoder)  # type: ignore[arg-type]
    app.add_api_route("/test/boom", _boom, include_in_schema=False)
    return app


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_every_response_gets_an_id_and_a_sane_incoming_one_is_kept(client: TestClient) -> None:
    first, second = client.get("/healthz"), client.get("/healthz")
    assert GENERATED.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]

    for sane in ("req-42", "0f8fad5b-d9cb-469f-a165-70867728950e", "Root=1-abc:def/x+y"):
        assert (
            client.get("/healthz", headers={"X-Request-ID": sane}).headers["x-request-id"] == sane
        )
    for odd in ("x" * 129, "two words", "semi;colon", '"quoted"', "é".encode()):
        got = client.get("/healthz", headers={"X-Request-ID": odd}).headers["x-request-id"]
        assert GENERATED.fullmatch(got), (odd, got)


def test_problems_of_every_layer_carry_the_id(client: TestClient) -> None:
    cases = {
        # a route's own validation (FastAPI)
        "422": client.get("/v1/search", params={"q": "x", "k": 0}, headers={"X-Request-ID": "a1"}),
        # Starlette's routing
        "404": client.get("/no/such/path", headers={"X-Request-ID": "a2"}),
        # the body-limit middleware, before any route runs
        "413": client.post(
            "/v1/search",
            files={"image": ("big.bin", b"\0" * 200_000, "image/jpeg")},
            headers={"X-Request-ID": "a3"},
        ),
        # an unexpected exception, answered by the server-error layer outside the middleware
        "500": client.get("/test/boom", headers={"X-Request-ID": "a4"}),
    }
    for i, (status, resp) in enumerate(cases.items(), start=1):
        assert str(resp.status_code) == status
        assert resp.headers["content-type"] == "application/problem+json", status
        assert resp.headers["x-request-id"] == f"a{i}", status
        assert resp.json()["request_id"] == f"a{i}", status
        assert resp.json()["status"] == resp.status_code
    assert "a bug" not in cases["500"].text  # nothing of the internals leaks


def test_each_request_is_logged_once_with_its_route_and_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "navy").save(buf, "JPEG")
    with caplog.at_level(logging.DEBUG, logger=ACCESS_LOGGER):
        client.get("/v1/products/no-such-product", headers={"X-Request-ID": "log-1"})
        client.post(
            "/v1/search",
            files={"image": ("p.jpg", buf.getvalue(), "image/jpeg")},
            headers={"X-Request-ID": "log-2"},
        )
        client.get("/healthz", headers={"X-Request-ID": "log-3"})
    lines = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert [r.request_id for r in lines] == ["log-1", "log-2", "log-3"]  # type: ignore[attr-defined]
    first, second, probe = lines
    assert first.route == "/v1/products/{product_id}"  # type: ignore[attr-defined]
    assert first.path == "/v1/products/no-such-product"  # type: ignore[attr-defined]
    assert (first.method, first.status) == ("GET", 404)  # type: ignore[attr-defined]
    assert first.levelno == logging.INFO
    assert (second.route, second.status) == ("/v1/search", 200)  # type: ignore[attr-defined]
    assert second.duration_ms > 0  # type: ignore[attr-defined]
    assert "POST /v1/search 200" in second.getMessage() and "log-2" in second.getMessage()
    assert probe.levelno == logging.DEBUG  # a successful probe stays out of INFO logs


def test_the_500_traceback_is_logged_with_the_request_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="app.api.problems"):
        client.get("/test/boom", headers={"X-Request-ID": "crash-1"})
    (record,) = [r for r in caplog.records if r.name == "app.api.problems"]
    assert record.request_id == "crash-1"  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "crash-1" and line["level"] == "ERROR"
    assert "RuntimeError: a bug the handlers do not know" in line["exc"]


def test_json_lines_carry_the_request_id_of_the_context() -> None:
    record = logging.LogRecord("app.x", logging.WARNING, __file__, 1, "odd %s", ("thing",), None)
    RequestIdFilter().filter(record)  # outside a request: none
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "odd thing" and line["request_id"] is None
    assert line["logger"] == "app.x" and line["ts"].endswith("+00:00")
