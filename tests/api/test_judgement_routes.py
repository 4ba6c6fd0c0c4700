"""/v1/judgements: admin key, recording against the catalog, listing, delete, CSV export/import."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.api.routes import judgements as routes
from app.evaluation.judgements import JudgementStore, text_key
from app.settings import Settings
from tests.fakes import FakeEncoder
from tests.helpers import copy_data_dir

KEY = "k3y-for-tests-0123456789"
ADMIN = {"X-API-Key": KEY}
SHA = "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def data_dir(fake_ingested_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the ingested data dir, so the marks made here reach no other test."""
    copy = tmp_path_factory.mktemp("judged") / "data"
    copy_data_dir(fake_ingested_dir, copy)
    return copy


@pytest.fixture(scope="module")
def client(data_dir: Path, fake_encoder: FakeEncoder) -> Iterator[TestClient]:
    settings = Settings(data_dir=data_dir, admin_key=KEY)
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        yield c


@pytest.fixture(scope="module")
def products(mini_catalog: Path) -> list[str]:
    with (mini_catalog / "products.csv").open(newline="") as fh:
        return [row["product_id"] for row in csv.DictReader(fh)][:4]


@pytest.fixture(autouse=True)
def _empty_store(client: TestClient) -> None:
    """Each test starts without marks (the app and its store are shared by the module)."""
    store: JudgementStore = client.app.state.judgements  # type: ignore[attr-defined]
    for mark in store.find(limit=100_000):
        store.delete(mark.query_key, mark.product_id, mark.judge)


def _post(client: TestClient, **body: object) -> dict:
    resp = client.post("/v1/judgements", json=body, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _list(client: TestClient, **params: object) -> dict:
    resp = client.get("/v1/judgements", params=params, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_every_route_needs_the_admin_key(client: TestClient, products: list[str]) -> None:
    body = {"query": "shirt", "product_id": products[0], "relevant": True, "judge": "al"}
    calls = [
        ("POST", "/v1/judgements", {"json": body}),
        ("GET", "/v1/judgements", {}),
        ("DELETE", "/v1/judgements", {"params": {"query_key": "text:a", "product_id": "p"}}),
        ("GET", "/v1/judgements/export", {}),
        ("POST", "/v1/judgements/import", {"content": b"query_key,product_id,relevant,judge\n"}),
    ]
    for method, url, kwargs in calls:
        for headers in ({}, {"X-API-Key": KEY + "x"}):
            resp = client.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]
            assert resp.status_code == 401, (method, url, resp.text)
    assert _list(client)["total"] == 0  # the unauthorised POST stored nothing


def test_judgements_are_off_without_an_admin_key(fake_encoder: FakeEncoder, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        resp = c.get("/v1/judgements", headers={"X-API-Key": "anything"})
    assert resp.status_code == 403
    assert "SNAPSHOP_ADMIN_KEY" in resp.json()["detail"]


def test_post_by_text_sha_and_key(client: TestClient, products: list[str]) -> None:
    p0, p1, p2 = products[:3]
    by_text = _post(client, query="Navy  Shirt", product_id=p0, relevant=True, judge="alice")
    assert by_text["query_key"] == "text:navy shirt" == text_key("navy shirt")
    assert by_text["product_id"] == p0 and by_text["relevant"] is True
    assert by_text["judge"] == "alice" and by_text["note"] == ""
    assert by_text["updated_at"].endswith("+00:00")

    by_sha = _post(
        client, image_sha256=SHA.upper(), product_id=p1, relevant=False, judge="bob", note="no"
    )
    assert by_sha["query_key"] == "image:" + SHA
    assert (by_sha["relevant"], by_sha["note"]) == (False, "no")

    by_key = _post(client, query_key="text:NAVY shirt", product_id=p2, relevant=True, judge="alice")
    assert by_key["query_key"] == "text:navy shirt"

    # The same judge marking again replaces the mark.
    again = _post(client, query="navy shirt", product_id=p0, relevant=False, judge="alice")
    assert again["relevant"] is False
    listed = _list(client)
    assert listed["total"] == 3
    assert {(m["query_key"], m["product_id"], m["relevant"]) for m in listed["judgements"]} == {
        ("text:navy shirt", p0, False),
        ("image:" + SHA, p1, False),
        ("text:navy shirt", p2, True),
    }


def test_unknown_product_is_404(client: TestClient) -> None:
    resp = client.post(
        "/v1/judgements",
        json={"query": "shirt", "product_id": "no-such-product", "relevant": True, "judge": "a"},
        headers=ADMIN,
    )
    assert resp.status_code == 404
    assert "no-such-product" in resp.json()["detail"]
    assert _list(client)["total"] == 0


@pytest.mark.parametrize(
    "change",
    [
        {"image_sha256": SHA},  # two ways of naming the query
        {"query": None},  # none
        {"query": None, "image_sha256": SHA[:-1]},  # not 64 hex digits
        {"query": None, "image_sha256": "z" * 64},
        {"query": None, "query_key": "shirt"},  # no text:/image: prefix
        {"query": "   "},  # no text
        {"colour": "navy"},  # extra field
        {"relevant": "maybe"},
        {"relevant": 1},  # a bool, not something bool-ish
        {"judge": ""},
        {"judge": "a\tb"},
        {"judge": "x" * 65},
        {"note": "n" * 2001},
    ],
)
def test_bad_bodies_are_422(client: TestClient, products: list[str], change: dict) -> None:
    body = {"query": "shirt", "product_id": products[0], "relevant": True, "judge": "alice"}
    body = {k: v for k, v in {**body, **change}.items() if v is not None}
    resp = client.post("/v1/judgements", json=body, headers=ADMIN)
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"]
    assert _list(client)["total"] == 0


def test_two_query_fields_are_explained(client: TestClient, products: list[str]) -> None:
    body = {"query": "a", "query_key": "text:a", "product_id": products[0]}
    resp = client.post(
        "/v1/judgements", json={**body, "relevant": True, "judge": "al"}, headers=ADMIN
    )
    assert resp.status_code == 422
    assert "exactly one of query, image_sha256 or query_key" in resp.text


def test_list_filters_and_pages(client: TestClient, products: list[str]) -> None:
    for i, product in enumerate(products):
        _post(client, query=f"q{i % 2}", product_id=product, relevant=True, judge="alice")
    _post(client, query="q0", product_id=products[0], relevant=False, judge="bob")
    everything = _list(client)
    assert everything["total"] == 5
    newest_first = [m["updated_at"] for m in everything["judgements"]]
    assert newest_first == sorted(newest_first, reverse=True)
    assert everything["judgements"][0]["judge"] == "bob"  # the last one recorded

    page = _list(client, limit=2, offset=2)
    assert page["total"] == 5
    assert page["judgements"] == everything["judgements"][2:4]
    assert _list(client, judge="bob")["total"] == 1
    assert _list(client, query_key="text:Q0")["total"] == 3
    assert _list(client, product_id=products[0])["total"] == 2
    assert _list(client, query_key="text:q0", judge="alice")["total"] == 2
    for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"query_key": "q0"}):
        assert client.get("/v1/judgements", params=params, headers=ADMIN).status_code == 422


def test_delete_is_204_then_404(client: TestClient, products: list[str]) -> None:
    _post(client, query="lamp", product_id=products[0], relevant=True, judge="alice")
    _post(client, query="lamp", product_id=products[0], relevant=False, judge="bob")
    target = {"query_key": "text:lamp", "product_id": products[0], "judge": "alice"}
    resp = client.delete("/v1/judgements", params=target, headers=ADMIN)
    assert resp.status_code == 204 and resp.content == b""
    assert [m["judge"] for m in _list(client)["judgements"]] == ["bob"]
    again = client.delete("/v1/judgements", params=target, headers=ADMIN)
    assert again.status_code == 404 and "alice" in again.json()["detail"]
    partial = client.delete(
        "/v1/judgements", params={"query_key": "text:lamp", "judge": "bob"}, headers=ADMIN
    )
    assert partial.status_code == 422  # all three are required
    assert _list(client)["total"] == 1


def test_export_then_import_into_a_fresh_data_dir(
    client: TestClient, products: list[str], tmp_path: Path
) -> None:
    _post(client, query="navy shirt", product_id=products[0], relevant=True, judge="alice")
    _post(
        client,
        image_sha256=SHA,
        product_id=products[1],
        relevant=False,
        judge="Zoë",
        note='too "dark", wrong\nsleeves',
    )
    _post(client, query="navy shirt", product_id=products[0], relevant=False, judge="bob")
    resp = client.get("/v1/judgements/export", headers=ADMIN)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.headers["content-disposition"] == "attachment; filename=judgements.csv"
    rows = list(csv.DictReader(io.StringIO(resp.text, newline="")))
    assert len(rows) == 3
    assert list(rows[0]) == ["query_key", "product_id", "relevant", "judge", "note", "updated_at"]
    assert {r["relevant"] for r in rows} == {"0", "1"}

    source: JudgementStore = client.app.state.judgements  # type: ignore[attr-defined]
    encoder = client.app.state.live.current.encoder  # type: ignore[attr-defined]
    settings = Settings(data_dir=tmp_path / "fresh", admin_key=KEY)
    with TestClient(create_app(settings, encoder=encoder)) as fresh:
        imported = fresh.post(
            "/v1/judgements/import",
            content=resp.content,
            headers={**ADMIN, "Content-Type": "text/csv"},
        )
        assert imported.status_code == 200, imported.text
        assert imported.json() == {"imported": 3}
        assert _list(fresh) == _list(client)
        target: JudgementStore = fresh.app.state.judgements  # type: ignore[attr-defined]
        assert target.qrels() == source.qrels()
        assert fresh.get("/v1/judgements/export", headers=ADMIN).text == resp.text
    assert (tmp_path / "fresh" / "judgements.sqlite").is_file()


def test_a_bad_import_is_422_with_line_numbers_and_imports_nothing(client: TestClient) -> None:
    body = (
        "\ufeffquery_key,product_id,relevant,judge\n"
        "text:ok,p1,1,alice\n"
        "text:ok,p2,perhaps,alice\n"
        "shirt,p3,1,alice\n"
        "text:ok,,1,alice\n"
    ).encode()
    resp = client.post(
        "/v1/judgements/import", content=body, headers={**ADMIN, "Content-Type": "text/csv"}
    )
    assert resp.status_code == 422
    payload = resp.json()
    assert [p.split(":")[:2] for p in payload["problems"]] == [
        ["upload", "3"],
        ["upload", "4"],
        ["upload", "5"],
    ]
    assert "upload:3: relevant" in payload["detail"] and "nothing imported" in payload["detail"]
    assert _list(client)["total"] == 0

    missing = client.post("/v1/judgements/import", content=b"query_key,judge\n", headers=ADMIN)
    assert missing.status_code == 422
    assert "product_id, relevant" in missing.json()["detail"]

    latin1 = "query_key,product_id,relevant,judge\ntext:caf\xe9,p1,1,al\n".encode("latin-1")
    undecodable = client.post("/v1/judgements/import", content=latin1, headers=ADMIN)
    assert undecodable.status_code == 422 and "UTF-8" in undecodable.json()["detail"]
    assert _list(client)["total"] == 0


def test_a_bom_import_succeeds(client: TestClient) -> None:
    body = "\ufeffquery_key,product_id,relevant,judge\ntext:Café,p1,yes,José\n".encode()
    resp = client.post("/v1/judgements/import", content=body, headers=ADMIN)
    assert resp.json() == {"imported": 1}
    (mark,) = _list(client)["judgements"]
    assert (mark["query_key"], mark["judge"], mark["relevant"]) == ("text:café", "José", True)


def test_an_oversized_import_is_413(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "MAX_IMPORT_BYTES", 100)
    header = b"query_key,product_id,relevant,judge\n"
    big = header + b"text:q,p1,1,alice\n" * 10  # 216 bytes
    resp = client.post("/v1/judgements/import", content=big, headers=ADMIN)
    assert resp.status_code == 413 and "MB" in resp.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap must hold while streaming
        yield header
        yield b"text:q,p1,1,alice\n" * 10

    streamed = client.post("/v1/judgements/import", content=chunks(), headers=ADMIN)
    assert streamed.status_code == 413
    assert _list(client)["total"] == 0

    small = client.post(
        "/v1/judgements/import", content=header + b"text:q,p1,1,al\n", headers=ADMIN
    )
    assert small.status_code == 200 and small.json() == {"imported": 1}


def test_a_form_upload_is_refused_with_a_hint(client: TestClient) -> None:
    resp = client.post(
        "/v1/judgements/import",
        files={"file": ("j.csv", b"query_key,product_id,relevant,judge\n")},
        headers=ADMIN,
    )
    assert resp.status_code == 415 and "text/csv" in resp.json()["detail"]


def test_a_huge_offset_is_a_422_not_a_500(client: TestClient) -> None:
    resp = client.get("/v1/judgements", params={"offset": 10**21}, headers=ADMIN)
    assert resp.status_code == 422
    assert resp.json()["detail"]
