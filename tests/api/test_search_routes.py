"""Contract of /v1/search and /healthz, in-process (TestClient runs the real app and store).

The mini catalog is ingested with the fake encoder: these tests check the contract, not the
model.
"""

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


@pytest.fixture(scope="module")
def client(fake_ingested_dir: Path, fake_encoder: FakeEncoder) -> Iterator[TestClient]:
    settings = Settings(data_dir=fake_ingested_dir, max_upload_mb=0.05, max_k=50)
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        yield c


def _png(size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color=120 if mode == "L" else (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_json_multipart_and_get_agree(client: TestClient) -> None:
    a = client.post("/v1/search", json={"q": "watch", "k": 5}).json()
    b = client.post("/v1/search", data={"q": "watch", "k": "5"}).json()
    c = client.get("/v1/search", params={"q": "watch", "k": 5}).json()
    ids = [r["product_id"] for r in a["results"]]
    assert len(ids) == 5
    assert ids == [r["product_id"] for r in b["results"]] == [r["product_id"] for r in c["results"]]
    result = a["results"][0]
    assert set(result) == {
        "product_id",
        "title",
        "category",
        "score",
        "image",
        "matched_images",
        "image_url",
        "matched_image_urls",
        "price",
        "ranks",
        "exact_match",
        "explain",
    }
    assert result["explain"] is None  # only when asked for
    assert result["score"] > 0


def test_image_and_text_together_use_all_five_legs(client: TestClient) -> None:
    resp = client.post(
        "/v1/search", files={"image": ("q.png", _png(), "image/png")}, data={"q": "red"}
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["legs"] == ["image", "image_text", "text_image", "text_text", "bm25"]
    assert body["profile"] == {"name": "default", "version": 0}
    for stage in ("decode", "embed_image", "embed_text", "legs", "fusion", "total"):
        assert body["timings_ms"][stage] >= 0, stage
    for leg in body["legs"]:
        assert body["timings_ms"][f"leg_{leg}"] >= 0


def test_greyscale_and_alpha_images_are_accepted(client: TestClient) -> None:
    for mode in ("L", "RGBA", "P"):
        resp = client.post("/v1/search", files={"image": ("q.png", _png(mode=mode), "image/png")})
        assert resp.status_code == 200, (mode, resp.text)


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"json": {}}, 422, "give a text query (q), an image, or both"),
        ({"json": {"q": "   "}}, 422, "give a text query"),
        ({"json": {"q": "x", "k": 0}}, 422, "k: Input should be greater than or equal to 1"),
        ({"json": {"q": "x", "k": 51}}, 422, "k must be between 1 and 50"),
        ({"json": {"q": "x", "k": "many"}}, 422, "k: Input should be a valid integer"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "JSON"),
        ({"data": {"q": "x", "k": "many"}}, 422, "k: Input should be a valid integer"),
        ({"files": {"image": ("e.jpg", b"", "image/jpeg")}}, 422, "the uploaded file is empty"),
        (
            {"files": {"image": ("x.jpg", b"GIF89a-nope", "image/jpeg")}},
            422,
            "could not be decoded",
        ),
        (
            {"files": {"image": ("big.bin", b"\0" * 60_000, "image/png")}},
            413,
            "larger than 0.05 MB",
        ),
        ({"content": b"q=x", "headers": {"content-type": "text/plain"}}, 415, "application/json"),
    ],
)
def test_bad_posts_get_a_status_and_a_reason(
    client: TestClient, kwargs: dict, status: int, reason: str
) -> None:
    resp = client.post("/v1/search", **kwargs)
    assert resp.status_code == status, resp.text
    assert reason in resp.json()["detail"]


def test_get_without_q_is_422(client: TestClient) -> None:
    resp = client.get("/v1/search")
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["status"] == 422 and problem["title"] == "Unprocessable Entity"
    assert problem["errors"][0]["loc"] == ["query", "q"]
    assert "query.q: Field required" in problem["detail"]


def test_unknown_category_returns_no_results_not_an_error(client: TestClient) -> None:
    resp = client.get("/v1/search", params={"q": "shirt", "category": "Furniture/Chairs"})
    assert resp.status_code == 200
    assert resp.json()["results"] == []


def test_healthz(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["provider"] == "CPUExecutionProvider"
    assert body["store"]["points"] == 50
    assert body["store"]["backend"] == "qdrant-edge"


def _levels(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(min(2, len(parts)))]


def test_facets_count_every_fused_candidate_by_category(client: TestClient) -> None:
    from collections import Counter

    # the mini catalog has 50 products and k may be 50: the page is the whole fused window,
    # so the categories of the results are the oracle for the engine's counts
    body = client.post("/v1/search", json={"q": "men", "k": 50, "facets": True}).json()
    window = body["results"]
    expected = Counter(level for r in window for level in _levels(r["category"]))
    got = {f["value"]: f["count"] for f in body["facets"]["category"]}
    assert got == dict(expected)
    counts = [f["count"] for f in body["facets"]["category"]]
    assert counts == sorted(counts, reverse=True)
    assert "facets" in body["timings_ms"]


def test_facets_cover_the_window_not_the_page(client: TestClient) -> None:
    page = client.post("/v1/search", json={"q": "men", "k": 3, "facets": True}).json()
    whole = client.post("/v1/search", json={"q": "men", "k": 50, "facets": True}).json()
    assert page["facets"] == whole["facets"]
    assert sum(f["count"] for f in page["facets"]["category"] if "/" not in f["value"]) > 3


def test_facets_in_multipart_and_get_and_off_by_default(client: TestClient) -> None:
    plain = client.post("/v1/search", json={"q": "men"}).json()
    assert plain["facets"] is None
    form = client.post("/v1/search", data={"q": "men", "facets": "true"}).json()
    url = client.get("/v1/search", params={"q": "men", "facets": "true"}).json()
    body = client.post("/v1/search", json={"q": "men", "facets": True}).json()
    assert form["facets"] == body["facets"] == url["facets"]
    photo = client.post(
        "/v1/search", data={"facets": "true"}, files={"image": ("p.png", _png(), "image/png")}
    ).json()
    assert photo["facets"]["category"]


def test_a_facet_value_filters_to_its_count(client: TestClient) -> None:
    body = client.post("/v1/search", json={"q": "men", "k": 50, "facets": True}).json()
    chip = next(f for f in body["facets"]["category"] if "/" in f["value"])
    narrowed = client.post(
        "/v1/search",
        json={"q": "men", "k": 50, "filters": {"category": chip["value"]}},
    ).json()["results"]
    assert narrowed and len(narrowed) <= chip["count"]
    assert all(r["category"].startswith(chip["value"]) for r in narrowed)
