"""``/v1/images``: thumbnails of the images the store references, cached, with ETags."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.api.main import create_app
from app.settings import Settings
from tests.fakes import FakeEncoder
from tests.helpers import copy_data_dir


@pytest.fixture(scope="module")
def data_dir(fake_ingested_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # thumbnails are written under the data dir: a copy keeps the shared one read-only
    return copy_data_dir(fake_ingested_dir, tmp_path_factory.mktemp("images_api") / "data")


@pytest.fixture(scope="module")
def client(data_dir: Path, fake_encoder: FakeEncoder) -> Iterator[TestClient]:
    settings = Settings(data_dir=data_dir)
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        yield c


def _open(content: bytes) -> Image.Image:
    return Image.open(io.BytesIO(content))


def test_search_results_carry_urls_that_serve_their_images(client: TestClient) -> None:
    body = client.post("/v1/search", json={"q": "shirt", "k": 5}).json()
    assert body["results"]
    for r in body["results"]:
        assert r["image_url"].startswith("/v1/images/")
        assert len(r["matched_image_urls"]) == len(r["matched_images"])
        resp = client.get(r["image_url"])
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "image/jpeg"
        assert _open(resp.content).width <= 320


def test_photo_results_name_the_images_that_matched(client: TestClient, mini_catalog: Path) -> None:
    photo = next((mini_catalog / "images").iterdir()).read_bytes()
    body = client.post("/v1/search", files={"image": ("p.jpg", photo, "image/jpeg")}).json()
    top = body["results"][0]
    assert top["matched_images"] and top["matched_image_urls"]
    assert top["image_url"] == top["matched_image_urls"][0]


@pytest.mark.parametrize("width", [160, 320, 640])
def test_widths_and_the_cache(client: TestClient, data_dir: Path, width: int) -> None:
    pid = client.post("/v1/search", json={"q": "watch", "k": 1}).json()["results"][0]["product_id"]
    url = client.get(f"/v1/products/{pid}").json()["image_urls"][0]
    first = client.get(url, params={"w": width})
    assert first.status_code == 200
    assert _open(first.content).width <= width
    assert first.headers["cache-control"] == "public, max-age=86400"
    etag = first.headers["etag"]
    cached = list((data_dir / "thumbs").rglob("*.jpg"))
    assert cached, "the thumbnail was not cached under the data dir"
    again = client.get(url, params={"w": width}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag
    assert client.get(url, params={"w": width}).content == first.content


def test_product_lists_a_url_per_image(client: TestClient) -> None:
    pid = client.post("/v1/search", json={"q": "shirt", "k": 1}).json()["results"][0]["product_id"]
    product = client.get(f"/v1/products/{pid}").json()
    assert len(product["image_urls"]) == len(product["images"]) >= 1
    similar = client.get(f"/v1/products/{pid}/similar", params={"k": 3}).json()
    assert all(r["image_url"] for r in similar["results"])


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/images/no-such-product/0", 404),
        ("/v1/images/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd/0", 404),
        ("/v1/images/..%2F..%2Fpyproject.toml/0", 404),
        ("/v1/images/fashion_1580/-1", 422),
        ("/v1/images/fashion_1580/0?w=500", 422),
    ],
)
def test_nothing_else_is_served(client: TestClient, path: str, status: int) -> None:
    resp = client.get(path)
    assert resp.status_code == status, resp.text
    assert resp.json()["detail"]


def test_an_image_past_the_products_list_is_404(client: TestClient) -> None:
    pid = client.post("/v1/search", json={"q": "shirt", "k": 1}).json()["results"][0]["product_id"]
    n = len(client.get(f"/v1/products/{pid}").json()["images"])
    resp = client.get(f"/v1/images/{pid}/{n}")
    assert resp.status_code == 404
    assert pid in resp.json()["detail"]
