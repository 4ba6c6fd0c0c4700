"""Contract of the search options, products, examples and fusion-profile endpoints.

A small priced catalog (50 dev products with a price column, one product with two images) is
ingested for real with the fake encoder (tests/fakes.py: these tests check the contract, not the
model); the app runs in-process with its real store.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from app.api.main import create_app
from app.settings import Settings
from app.store import EdgeStore
from ingestion.pipeline import ingest_catalog
from tests.fakes import FakeEncoder

KEY = "contract-admin-key-0123456789"


@pytest.fixture(scope="module")
def priced(tmp_path_factory: pytest.TempPathFactory, mini_catalog: Path) -> Path:
    root = tmp_path_factory.mktemp("priced")
    (root / "images").mkdir()
    with (mini_catalog / "products.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [*(reader.fieldnames or []), "price"]
        rows = list(reader)
    for i, row in enumerate(rows):
        row["price"] = str(10 + i)
        name = row["image_files"]
        (root / "images" / name).symlink_to((mini_catalog / "images" / name).resolve())
    # Product 0 gets a second photo (its mirror image): one product, two points.
    first = rows[0]["image_files"]
    ImageOps.mirror(Image.open(root / "images" / first).convert("RGB")).save(
        root / "images" / "second.jpg"
    )
    rows[0]["image_files"] = f"{first};second.jpg"
    with (root / "products.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, priced: Path, fake_encoder: FakeEncoder
) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("contract_data")
    store = EdgeStore(data / "qdrant")
    ingest_catalog(priced, store, fake_encoder)
    store.close()
    settings = Settings(data_dir=data, admin_key=KEY, max_k=50)
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        yield c


def _rows(priced: Path) -> list[dict[str, str]]:
    with (priced / "products.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _photo(priced: Path, row: dict[str, str]) -> bytes:
    return (priced / "images" / row["image_files"].split(";")[0]).read_bytes()


def _post(client: TestClient, **body: object) -> dict:
    resp = client.post("/v1/search", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- explain, paging, grouping --------------------------------------------------------------


@pytest.mark.parametrize("method", ["rrf", "minmax", "zscore", "dbsf"])
def test_explain_contributions_add_up_to_the_fused_score(
    client: TestClient, priced: Path, method: str
) -> None:
    row = _rows(priced)[3]
    resp = client.post(
        "/v1/search",
        files={"image": ("q.jpg", _photo(priced, row), "image/jpeg")},
        data={
            "q": "black shirt",
            "k": "20",
            "explain": "true",
            "fusion": json.dumps({"method": method, "weights": {"bm25": 2, "image": 0.5}}),
        },
    )
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert results
    for r in results:
        parts = r["explain"]
        assert set(parts) == set(r["ranks"])
        assert sum(p["contribution"] for p in parts.values()) == pytest.approx(r["score"])
        assert all(parts[leg]["rank"] == r["ranks"][leg] for leg in parts)
    if method == "rrf":  # the formula itself: w / (60 + rank)
        first = results[0]["explain"]
        for leg, p in first.items():
            weight = {"bm25": 2, "image": 0.5}.get(leg, 1)
            assert p["contribution"] == pytest.approx(weight / (60 + p["rank"]))


def test_offset_pages_through_the_same_ranking(client: TestClient) -> None:
    full = [r["product_id"] for r in _post(client, q="men", k=12)["results"]]
    first = _post(client, q="men", k=6)
    second = _post(client, q="men", k=6, offset=6)
    assert [r["product_id"] for r in first["results"] + second["results"]] == full
    assert second["offset"] == 6


def test_grouping_gives_products_and_lists_their_matched_images(
    client: TestClient, priced: Path
) -> None:
    row = _rows(priced)[0]
    photo = _photo(priced, row)
    files = {"image": ("q.jpg", photo, "image/jpeg")}
    grouped = client.post("/v1/search", files=files, data={"k": "50"}).json()["results"]
    ids = [r["product_id"] for r in grouped]
    assert len(ids) == len(set(ids))
    mine = next(r for r in grouped if r["product_id"] == row["product_id"])
    assert sorted(mine["matched_images"]) == sorted(row["image_files"].split(";"))
    assert mine["image"] == mine["matched_images"][0]
    assert mine["price"] == 10.0
    flat = client.post(
        "/v1/search", files=files, data={"k": "50", "group_by_product": "false"}
    ).json()["results"]
    assert [r["product_id"] for r in flat].count(row["product_id"]) == 2
    assert {r["image"] for r in flat if r["product_id"] == row["product_id"]} == set(
        row["image_files"].split(";")
    )


# -- filters, floors, crop ------------------------------------------------------------------


def test_price_and_attribute_filters_hold_on_every_leg(client: TestClient, priced: Path) -> None:
    rows = {r["product_id"]: r for r in _rows(priced)}
    body = _post(client, q="men shirt", k=50, filters={"price_min": 20, "price_max": 30})
    assert body["results"]
    assert all(20 <= r["price"] <= 30 for r in body["results"])
    colour = next(r["color"] for r in rows.values() if r["color"])
    body = _post(client, q="shirt", k=50, filters={"attributes": {"Color": colour.upper()}})
    assert body["results"]
    assert all(rows[r["product_id"]]["color"] == colour for r in body["results"])


def test_a_score_floor_drops_weak_hits_and_keeps_the_filter(
    client: TestClient, priced: Path
) -> None:
    row = _rows(priced)[5]
    files = {"image": ("q.jpg", _photo(priced, row), "image/jpeg")}
    plain = {"weights": {"image_text": 0}}
    scores = [
        r["explain"]["image"]["score"]
        for r in client.post(
            "/v1/search", files=files, data={"fusion": json.dumps(plain), "explain": "true"}
        ).json()["results"]
    ]
    # A floor between the best and the second-best image score keeps the best alone.
    fusion = {**plain, "floors": {"image": (scores[0] + scores[1]) / 2}}
    body = client.post("/v1/search", files=files, data={"fusion": json.dumps(fusion)}).json()
    assert [r["product_id"] for r in body["results"]] == [row["product_id"]]
    other = "Grocery" if row["category"].startswith("Apparel") else "Apparel"
    filtered = client.post(
        "/v1/search",
        files=files,
        data={"fusion": json.dumps(fusion), "category": other},
    ).json()
    assert filtered["results"] == []


def test_crop_selects_the_object_in_the_box(client: TestClient, priced: Path) -> None:
    rows = _rows(priced)
    left, right = rows[7], rows[30]
    a = Image.open(io.BytesIO(_photo(priced, left))).convert("RGB").resize((128, 170))
    b = Image.open(io.BytesIO(_photo(priced, right))).convert("RGB").resize((128, 170))
    both = Image.new("RGB", (256, 170))
    both.paste(a, (0, 0))
    both.paste(b, (128, 0))
    buf = io.BytesIO()
    both.save(buf, format="PNG")
    image_only = json.dumps({"weights": {"image_text": 0}})
    for box, want in (([0, 0, 0.5, 1], left), ([0.5, 0, 1, 1], right)):
        crop = dict(zip(("x0", "y0", "x1", "y1"), box, strict=True))
        resp = client.post(
            "/v1/search",
            files={"image": ("both.png", buf.getvalue(), "image/png")},
            data={"crop": json.dumps(crop), "fusion": image_only, "k": "1"},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["results"][0]["product_id"] == want["product_id"]


def test_the_photographed_product_itself_is_listed_first_as_an_exact_match(
    client: TestClient, priced: Path
) -> None:
    for row in _rows(priced)[1::7]:
        files = {"image": ("q.jpg", _photo(priced, row), "image/jpeg")}
        # Text legs that know nothing of the photo would otherwise outvote the image leg.
        data = {"q": "watch", "fusion": json.dumps({"weights": {"bm25": 50}}), "k": "5"}
        results = client.post("/v1/search", files=files, data=data).json()["results"]
        assert results[0]["product_id"] == row["product_id"]
        assert results[0]["exact_match"] is True
    # A profile can switch it off: then the fused order stands.
    admin = {"X-API-Key": KEY}
    resp = client.put(
        "/v1/fusion/profiles/no-exact",
        json={"exact_match": None, "weights": {"bm25": 50}},
        headers=admin,
    )
    assert resp.status_code == 200, resp.text
    row = _rows(priced)[1]
    off = client.post(
        "/v1/search",
        files={"image": ("q.jpg", _photo(priced, row), "image/jpeg")},
        data={"q": "watch", "profile": "no-exact", "k": "5"},
    ).json()["results"]
    assert not any(r["exact_match"] for r in off)


# -- predicted category ----------------------------------------------------------------------


def test_predicted_category_is_reported_and_restricts_image_legs_when_applied(
    client: TestClient, priced: Path
) -> None:
    row = _rows(priced)[2]
    files = {"image": ("q.jpg", _photo(priced, row), "image/jpeg")}
    body = client.post(
        "/v1/search", files=files, data={"predict_category": "true", "k": "30"}
    ).json()
    predicted = body["predicted_category"]
    assert predicted is not None and 0 < predicted["confidence"] <= 1
    assert "predict_category" in body["timings_ms"]
    if predicted["applied"]:
        for r in body["results"]:
            assert (r["category"].lower() + "/").startswith(predicted["path"] + "/")
    off = client.post("/v1/search", files=files, data={"predict_category": "false"}).json()
    assert off["predicted_category"] is None
    explicit = client.post(
        "/v1/search", files=files, data={"predict_category": "true", "category": "Apparel"}
    ).json()
    assert explicit["predicted_category"] is None  # an explicit filter wins


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"q": "x", "offset": -1}, "offset: Input should be greater than or equal to 0"),
        ({"q": "x", "k": 50, "offset": 960}, "offset + k must be at most 1000"),
        ({"q": "x", "crop": {"x0": 0, "y0": 0, "x1": 1, "y1": 1}}, "crop applies to an image"),
        ({"q": "x", "filters": {"price_min": 5, "price_max": 1}}, "price_min is above price_max"),
        ({"q": "x", "filters": {"price_min": -1}}, "price_min: Input should be greater"),
        ({"q": "x", "fusion": {"method": "borda"}}, "fusion.method: Input should be"),
        ({"q": "x", "fusion": {"weights": {"colour": 1}}}, "unknown leg(s) colour"),
        ({"q": "x", "fusion": {"weights": {"bm25": -1}}}, "non-negative"),
        (
            {"q": "x", "fusion": {"weights": {"bm25": 0, "text_text": 0, "text_image": 0}}},
            "has weight 0",
        ),
        ({"q": "x", "profile": "nope"}, "no fusion profile 'nope'"),
        ({"q": "x", "category": "Apparel", "filters": {"category": "Grocery"}}, "disagree"),
        ({"q": "x", "filters": {"attributes": {"color": ""}}}, "must not be empty"),
        ({"q": "x", "surprise": 1}, None),  # unknown JSON keys are ignored, like most APIs
    ],
)
def test_bad_search_options_get_a_422_with_a_reason(
    client: TestClient, body: dict, reason: str | None
) -> None:
    resp = client.post("/v1/search", json=body)
    if reason is None:
        assert resp.status_code == 200
        return
    assert resp.status_code == 422, resp.text
    assert reason in json.dumps(resp.json()["detail"]), resp.json()


def test_bad_multipart_options_get_a_422(client: TestClient) -> None:
    for data, reason in (
        ({"q": "x", "crop": "{oops"}, "crop: not valid JSON"),
        ({"q": "x", "crop": json.dumps({"x0": 0.5, "y0": 0, "x1": 0.2, "y1": 1})}, "x0 < x1"),
        ({"q": "x", "colour": "red"}, "unknown form field(s): colour"),
        ({"q": "x", "explain": "perhaps"}, "explain: Input should be a valid boolean"),
    ):
        resp = client.post("/v1/search", data=data)
        assert resp.status_code == 422, (data, resp.text)
        assert reason in resp.json()["detail"]


# -- products and examples -------------------------------------------------------------------


def test_get_product_returns_its_payload(client: TestClient, priced: Path) -> None:
    row = _rows(priced)[0]
    resp = client.get(f"/v1/products/{row['product_id']}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["title"] == row["title"] and body["price"] == 10.0
    assert body["images"] == row["image_files"].split(";")
    assert body["attributes"]["color"] == row["color"]
    missing = client.get("/v1/products/no-such-thing")
    assert missing.status_code == 404
    assert "no product 'no-such-thing'" in missing.json()["detail"]


def test_similar_excludes_the_product_and_honours_filters(client: TestClient, priced: Path) -> None:
    row = _rows(priced)[4]
    body = client.get(f"/v1/products/{row['product_id']}/similar", params={"k": 10}).json()
    ids = [r["product_id"] for r in body["results"]]
    assert len(ids) == 10 and row["product_id"] not in ids
    filtered = client.get(
        f"/v1/products/{row['product_id']}/similar", params={"k": 50, "category": "Grocery"}
    ).json()
    assert all(r["category"].startswith("Grocery") for r in filtered["results"])
    assert client.get("/v1/products/nope/similar").status_code == 404
    assert client.get(f"/v1/products/{row['product_id']}/similar?k=0").status_code == 422


def test_examples_find_products_like_the_positives(client: TestClient, priced: Path) -> None:
    rows = _rows(priced)
    grocery = [r["product_id"] for r in rows if r["category"].startswith("Grocery")]
    fashion = [r["product_id"] for r in rows if not r["category"].startswith("Grocery")]
    body = client.post(
        "/v1/search/examples",
        json={"positive": grocery[:3], "negative": fashion[:2], "k": 5},
    ).json()
    ids = [r["product_id"] for r in body["results"]]
    assert len(ids) == 5
    assert not set(ids) & set(grocery[:3] + fashion[:2])  # the examples themselves are excluded
    for body, status, reason in (
        ({"positive": []}, 422, "positive"),
        ({"positive": ["ghost"]}, 404, "no product(s) 'ghost'"),
        ({"positive": grocery[:1], "negative": grocery[:1]}, 422, "both positive and negative"),
    ):
        resp = client.post("/v1/search/examples", json=body)
        assert resp.status_code == status, resp.text
        assert reason in json.dumps(resp.json()["detail"])


# -- fusion profiles -------------------------------------------------------------------------


def test_profiles_are_versioned_and_writes_need_the_admin_key(client: TestClient) -> None:
    listed = client.get("/v1/fusion/profiles").json()["profiles"]
    assert "default" in [p["name"] for p in listed]
    assert "kw" not in [p["name"] for p in listed]
    body = {"method": "dbsf", "weights": {"bm25": 2.0}, "description": "keywords first"}
    assert client.put("/v1/fusion/profiles/kw", json=body).status_code == 401
    assert (
        client.put("/v1/fusion/profiles/kw", json=body, headers={"X-API-Key": "wrong"}).status_code
        == 401
    )
    admin = {"X-API-Key": KEY}
    v1 = client.put("/v1/fusion/profiles/kw", json=body, headers=admin).json()
    assert (v1["name"], v1["version"], v1["method"]) == ("kw", 1, "dbsf")
    v2 = client.put("/v1/fusion/profiles/kw", json={**body, "method": "rrf"}, headers=admin).json()
    assert v2["version"] == 2
    assert client.get("/v1/fusion/profiles/kw").json()["method"] == "rrf"
    assert client.get("/v1/fusion/profiles/kw", params={"version": 1}).json()["method"] == "dbsf"
    assert client.get("/v1/fusion/profiles/kw", params={"version": 9}).status_code == 404
    used = _post(client, q="shirt", profile="kw")
    assert used["profile"] == {"name": "kw", "version": 2}
    assert used["fusion"]["weights"] == {"bm25": 2.0}
    for name, payload, reason in (
        ("Bad Name", body, "name:"),
        ("ok", {"weights": {"colour": 1}}, "unknown leg(s) colour"),
        ("ok", {"method": "borda"}, "method"),
        ("ok", {"candidates": 5}, "candidates"),
        ("ok", {"exact_match": 2}, "exact_match"),
    ):
        resp = client.put(f"/v1/fusion/profiles/{name}", json=payload, headers=admin)
        assert resp.status_code == 422, resp.text
        assert reason in json.dumps(resp.json()["detail"])
    assert client.get("/v1/fusion/profiles/absent").status_code == 404


def test_the_profile_body_schema_shows_the_profile_constraints(client: TestClient) -> None:
    body = client.get("/openapi.json").json()["components"]["schemas"]["ProfileBody"]
    fields = body["properties"]
    assert set(fields) == {
        "method",
        "k",
        "weights",
        "floors",
        "description",
        "predict_category",
        "category_confidence",
        "candidates",
        "exact_match",
    }  # name, version and updated_at are the server's
    assert (fields["candidates"]["minimum"], fields["candidates"]["maximum"]) == (10, 1_000)
    assert fields["description"]["maxLength"] == 2_000
