"""One error model: every 4xx is RFC 9457 problem+json with a reason, and the OpenAPI document
says so for every route; regressions for what the fuzzer found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.settings import Settings
from tests.fakes import FakeEncoder

KEY = "errors-admin-key-0123456789"


@pytest.fixture(scope="module")
def client(fake_ingested_dir: Path, fake_encoder: FakeEncoder) -> Iterator[TestClient]:
    settings = Settings(data_dir=fake_ingested_dir, admin_key=KEY, max_body_kb=4)
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        yield c


def _problem(resp: object, status: int) -> dict:
    assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
    assert resp.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body = resp.json()  # type: ignore[attr-defined]
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["title"]
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10
    return body


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "reason"),
    [
        ("GET", "/v1/nowhere", {}, 404, "no such resource"),
        ("GET", "/v1/products/no-such-id", {}, 404, "no-such-id"),
        ("GET", "/v1/admin/indexers", {}, 401, "X-API-Key"),
        ("GET", "/v1/search", {"params": {"q": "x", "k": 0}}, 422, "query.k"),
        ("POST", "/v1/search", {"json": {"k": 3}}, 422, "give a text query"),
        ("POST", "/v1/search", {"json": {"q": "x", "k": "many"}}, 422, "k: Input should be"),
        (
            "POST",
            "/v1/search",
            {"content": b"q", "headers": {"content-type": "text/plain"}},
            415,
            "multipart/form-data",
        ),
        (
            "POST",
            "/v1/search/examples",
            {"content": b"\xff{", "headers": {"content-type": "application/json"}},
            400,
            "UTF-8 JSON",
        ),
        (
            "PUT",
            "/v1/fusion/profiles/p",
            {"json": {"x": "y" * 8000}, "headers": {"X-API-Key": KEY}},
            413,
            "SNAPSHOP_MAX_BODY_KB",
        ),
        ("DELETE", "/v1/search", {}, 405, "does not accept that method"),
    ],
)
def test_every_error_is_a_problem_with_a_reason(
    client: TestClient, method: str, path: str, kwargs: dict, status: int, reason: str
) -> None:
    body = _problem(client.request(method, path, **kwargs), status)
    assert reason in body["detail"]


def test_validation_errors_list_each_field(client: TestClient) -> None:
    body = _problem(client.post("/v1/search", json={"q": "x", "k": 0, "offset": -1}), 422)
    assert sorted(e["loc"][-1] for e in body["errors"]) == ["k", "offset"]
    assert all(e["msg"] and e["type"] for e in body["errors"])
    assert "input" not in body["errors"][0]  # the request is not echoed back


def test_an_import_lists_its_bad_rows(client: TestClient) -> None:
    csv = "query_key,product_id,relevant,judge\ntext:a,p,maybe,ann\n"
    resp = client.post(
        "/v1/judgements/import",
        content=csv.encode(),
        headers={"X-API-Key": KEY, "content-type": "text/csv"},
    )
    body = _problem(resp, 422)
    assert body["problems"] and body["problems"][0].startswith("upload:2:")


@pytest.mark.parametrize("blank", ["", " ", "/", " / ", "//"])
def test_a_blank_category_path_in_filters_is_a_422(client: TestClient, blank: str) -> None:
    # found by the fuzzer: a 500 from the engine before
    body = _problem(
        client.post("/v1/search", json={"q": "shirt", "filters": {"category": blank}}), 422
    )
    assert "filters.category" in body["detail"] and "non-blank segment" in body["detail"]
    shorthand = client.post("/v1/search", json={"q": "shirt", "category": blank})
    assert "category" in _problem(shorthand, 422)["detail"]


def test_a_blank_category_in_a_url_is_a_422_and_an_empty_one_means_any(
    client: TestClient,
) -> None:
    _problem(client.get("/v1/search", params={"q": "shirt", "category": " / "}), 422)
    assert client.get("/v1/search", params={"q": "shirt", "category": ""}).status_code == 200
    first = client.get("/v1/search", params={"q": "shirt"}).json()["results"][0]["product_id"]
    _problem(client.get(f"/v1/products/{first}/similar", params={"category": "/"}), 422)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/fusion/profiles/default?version=9223372036854775808",
        "/v1/eval/query-sets/dev/photos/99999999999999999999",
        "/v1/judgements?offset=99999999999999999999",
    ],
)
def test_out_of_range_numbers_are_a_422(client: TestClient, path: str) -> None:
    # found by the fuzzer: SQLite's 64-bit integers made these a 500 (OverflowError)
    body = _problem(client.get(path, headers={"X-API-Key": KEY}), 422)
    assert "less than or equal to" in body["detail"]


def test_openapi_declares_the_problem_for_every_error(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "Problem" in doc["components"]["schemas"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = {int(c) for c in op["responses"] if c.isdigit()}
            assert 503 in codes, (method, path)
            if path.startswith(("/v1/admin", "/v1/judgements", "/v1/eval")):
                assert {401, 403} <= codes, (method, path)
            if "requestBody" in op:
                assert 413 in codes, (method, path)
            for code in codes - set(range(400)):
                content = op["responses"][str(code)]["content"]
                assert content == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, code)
    search_body = doc["paths"]["/v1/search"]["post"]["requestBody"]["content"]["application/json"]
    # the schema reference the fuzzer could not resolve: SearchBody and its Filters are components
    assert search_body["schema"] == {"$ref": "#/components/schemas/SearchBody"}
    assert "Filters" in doc["components"]["schemas"]
    assert "#/$defs/" not in str(doc)
