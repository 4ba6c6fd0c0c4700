"""Abuse: a per-client rate limit on search, explicit CORS origins, security headers and the
pages' CSP, and the admin key on every admin route."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.api.ratelimit import RateLimit
from app.settings import Settings
from tests.fakes import FakeEncoder

KEY = "abuse-admin-key-0123456789"
FRONTEND = Path(__file__).resolve().parents[2] / "frontend"


@pytest.fixture(scope="module")
def client(fake_ingested_dir: Path, fake_encoder: FakeEncoder) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=fake_ingested_dir,
        admin_key=KEY,
        search_rate_limit="3/minute",
        cors_origins=["https://shop.example"],
    )
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        yield c


def test_search_is_rate_limited_per_client(client: TestClient) -> None:
    for _ in range(3):
        assert client.get("/v1/search", params={"q": "shirt"}).status_code == 200
    over = client.post("/v1/search", json={"q": "shirt"})  # every search route shares the budget
    assert over.status_code == 429
    assert over.headers["content-type"] == "application/problem+json"
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert "3/minute" in over.json()["detail"]
    # not the rest of the API
    assert client.get("/healthz").status_code == 200
    assert client.get("/v1/fusion/profiles").status_code == 200


def test_the_limit_counts_each_client_alone() -> None:
    limit = RateLimit("2/minute")
    assert limit.hit("10.0.0.1") is None and limit.hit("10.0.0.1") is None
    wait = limit.hit("10.0.0.1")
    assert wait is not None and 0 < wait <= 60
    assert limit.hit("10.0.0.2") is None


def test_no_rate_limit_by_default() -> None:
    assert Settings().search_rate_limit is None
    with pytest.raises(ValueError, match="not a rate"):
        Settings(search_rate_limit="lots")


def test_cors_allows_only_the_configured_origins(client: TestClient) -> None:
    ok = client.get("/healthz", headers={"Origin": "https://shop.example"})
    assert ok.headers["access-control-allow-origin"] == "https://shop.example"
    other = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_by_default(fake_ingested_dir: Path, fake_encoder: FakeEncoder) -> None:
    assert Settings().cors_origins == []
    app = create_app(Settings(data_dir=fake_ingested_dir), encoder=fake_encoder)  # type: ignore[arg-type]
    assert not [m for m in app.user_middleware if m.cls.__name__ == "CORSMiddleware"]


@pytest.mark.parametrize(
    "path", ["/healthz", "/v1/search?q=shirt", "/v1/nowhere", "/static/css/snapshop.css", "/"]
)
def test_security_headers_on_every_response(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "same-origin"
    assert resp.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("page", ["/", "/console"])
def test_the_pages_have_a_strict_csp(client: TestClient, page: str) -> None:
    csp = client.get(page).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-eval" not in csp and "unsafe-inline" not in directives["script-src"]


def test_the_csp_allows_what_the_pages_load() -> None:
    """No inline script or <style>, no other origin: what the CSP above would block."""
    for html in FRONTEND.glob("*.html"):
        text = html.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), html  # inline script
        assert "<style" not in text, html
        assert not re.search(r"""(src|href)=["']https?://""", text), html
        assert not re.search(r"\son[a-z]+=", text), html  # inline event handlers
    for js in (FRONTEND / "static" / "js").glob("*.js"):
        code = js.read_text()
        assert not re.search(r"fetch\(\s*[\"'`]https?://", code), js
        assert "eval(" not in code and "new Function" not in code, js


def test_every_admin_route_needs_the_key(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    admin_paths = ("/v1/admin", "/v1/judgements", "/v1/eval")
    guarded = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            is_admin = path.startswith(admin_paths) or (
                path.startswith("/v1/fusion/profiles") and method == "put"
            )
            # the key header is declared exactly where require_admin guards the route
            takes_key = any(p["name"].lower() == "x-api-key" for p in op.get("parameters", []))
            assert takes_key == is_admin, (method, path)
            if not is_admin:
                continue
            guarded += 1
            url = re.sub(r"\{[^}]+\}", "1", path)
            for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY[:-1]}):
                resp = client.request(method, url, headers=headers)
                assert resp.status_code == 401, (method, url, resp.text)
                assert resp.headers["www-authenticate"] == "X-API-Key"
    assert guarded >= 10


def test_the_console_page_itself_is_public(client: TestClient) -> None:
    resp = client.get("/console")
    assert resp.status_code == 200 and 'id="weights"' in resp.text
