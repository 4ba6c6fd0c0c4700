"""The web pages and their assets are served by the app itself; nothing outside frontend/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.settings import Settings
from tests.fakes import FakeEncoder


@pytest.fixture(scope="module")
def client(fake_ingested_dir: Path, fake_encoder: FakeEncoder) -> Iterator[TestClient]:
    settings = Settings(data_dir=fake_ingested_dir)
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        yield c


@pytest.mark.parametrize(("path", "marker"), [("/", 'id="picker"'), ("/console", 'id="weights"')])
def test_pages(client: TestClient, path: str, marker: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert marker in resp.text


def test_every_asset_a_page_names_is_served_locally(client: TestClient) -> None:
    import re

    for page in ("/", "/console"):
        html = client.get(page).text
        refs = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert not [r for r in refs if r.startswith(("http:", "https:", "//"))], refs
        for ref in refs:
            if ref.startswith("/static/"):
                assert client.get(ref).status_code == 200, ref


def test_static_files_stay_inside_frontend(client: TestClient) -> None:
    assert client.get("/static/../pyproject.toml").status_code == 404
    assert client.get("/static/%2E%2E/%2E%2E/pyproject.toml").status_code == 404


def test_pages_are_not_in_the_api_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and "/console" not in paths
    assert "/v1/images/{product_id}/{n}" in paths
