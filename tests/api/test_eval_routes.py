"""POST /v1/eval/run on a stored query set: same numbers as ``snapshop eval`` on the files.

The comparison with the CLI runs on the real tiny bundle (the CLI process loads it from disk);
every other test here checks the API's contract, on the fake encoder.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.api.routes import evaluation as routes
from app.evaluation.queries import read_image_queries, read_text_queries
from app.evaluation.querysets import QuerySetStore
from app.evaluation.search import eval_queries
from app.settings import Settings
from tests.fakes import FakeEncoder
from tests.helpers import copy_data_dir, snapshop_cmd

KEY = "k3y-for-tests-0123456789"
ADMIN = {"X-API-Key": KEY}
SCORES = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")


def _with_query_set(source: Path, copy: Path, mini_queries: Path) -> Path:
    """A copy of the ingested data dir ``source`` holding the mini query set as ``mini``."""
    copy_data_dir(source, copy)
    sets = QuerySetStore(Settings(data_dir=copy).querysets_path)
    queries = eval_queries(
        read_image_queries(mini_queries / "image_queries.csv"),
        read_text_queries(mini_queries / "text_queries.csv"),
    )
    sets.save("mini", queries, str(mini_queries))
    sets.close()
    return copy


@pytest.fixture(scope="module")
def client(
    fake_ingested_dir: Path,
    fake_encoder: FakeEncoder,
    mini_queries: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TestClient]:
    copy = tmp_path_factory.mktemp("eval_api") / "data"
    settings = Settings(
        data_dir=_with_query_set(fake_ingested_dir, copy, mini_queries), admin_key=KEY
    )
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        yield c


@pytest.fixture()
def real_client(
    ingested_dir: Path,
    tiny_bundle: Path,
    mini_queries: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TestClient]:
    """The app on the real tiny bundle, over a copy of the CLI-ingested data dir."""
    copy = tmp_path_factory.mktemp("eval_api_real") / "data"
    data_dir = _with_query_set(ingested_dir, copy, mini_queries)
    settings = Settings(data_dir=data_dir, model=tiny_bundle, admin_key=KEY)
    with TestClient(create_app(settings)) as c:
        yield c


def test_eval_routes_need_the_admin_key(client: TestClient) -> None:
    assert client.post("/v1/eval/run", json={"query_set": "mini"}).status_code == 401
    assert client.get("/v1/eval/query-sets", headers={"X-API-Key": "nope"}).status_code == 401


def test_query_sets_are_listed(client: TestClient) -> None:
    (found,) = client.get("/v1/eval/query-sets", headers=ADMIN).json()["query_sets"]
    assert found["name"] == "mini" and found["image_queries"] == 8 and found["text_queries"] == 12


def test_run_matches_the_cli_on_the_files(
    real_client: TestClient,
    ingested_dir: Path,
    tiny_bundle: Path,
    mini_queries: Path,
    tmp_path: Path,
) -> None:
    resp = real_client.post("/v1/eval/run", json={"query_set": "mini"}, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    api = resp.json()
    assert api["query_set"] == "mini" and api["profile"] == "default@0" and api["model"]
    assert api["image"]["n"] == 8 and api["text"]["n"] == 12
    assert set(api["image"]["by_type"]) == {"shop_photo"}
    assert set(api["legs"]) == {"image", "image_text", "text_image", "text_text", "bm25"}
    out = tmp_path / "cli.json"
    # The app holds the copy's store (one process per shard): the CLI reads the original.
    proc = subprocess.run(
        [*snapshop_cmd(ingested_dir, tiny_bundle), "eval", str(mini_queries), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(out.read_text())
    for kind in ("image", "text"):
        assert {m: api[kind][m] for m in SCORES} == {m: cli[kind][m] for m in SCORES}
    for leg, scores in cli["legs"].items():
        assert {m: api["legs"][leg][m] for m in SCORES} == {m: scores[m] for m in SCORES}


def test_bad_requests_say_why(client: TestClient) -> None:
    unknown = client.post("/v1/eval/run", json={"query_set": "nope"}, headers=ADMIN)
    assert unknown.status_code == 404 and "mini" in unknown.json()["detail"]
    profile = client.post(
        "/v1/eval/run", json={"query_set": "mini", "profile": "ghost"}, headers=ADMIN
    )
    assert profile.status_code == 422 and "ghost" in profile.json()["detail"]
    extra = client.post("/v1/eval/run", json={"query_set": "mini", "k": 5}, headers=ADMIN)
    assert extra.status_code == 422


def test_a_second_run_while_one_is_running_is_turned_away(client: TestClient) -> None:
    assert routes._running.acquire(blocking=False)
    try:
        busy = client.post("/v1/eval/run", json={"query_set": "mini"}, headers=ADMIN)
    finally:
        routes._running.release()
    assert busy.status_code == 409 and "already running" in busy.json()["detail"]


def test_judgements_refine_the_answers(client: TestClient, mini_queries: Path) -> None:
    (first,) = [q for q in read_text_queries(mini_queries / "text_queries.csv")][:1]
    plain = client.post("/v1/eval/run", json={"query_set": "mini"}, headers=ADMIN).json()
    top = client.post("/v1/search", json={"q": first.text, "k": 3}).json()["results"]
    extra = next(r["product_id"] for r in top if r["product_id"] not in first.relevant)
    (answer,) = first.relevant
    for pid, ok in ((extra, True), (answer, False)):
        resp = client.post(
            "/v1/judgements",
            json={"query": first.text, "product_id": pid, "relevant": ok, "judge": "pm"},
            headers=ADMIN,
        )
        assert resp.status_code == 201, resp.text
    judged = client.post(
        "/v1/eval/run", json={"query_set": "mini", "judgements": True}, headers=ADMIN
    ).json()
    assert judged["judgements"] == {"queries_judged": 1, "added": 1, "removed": 1, "dropped": 0}
    assert "judgements" not in plain
    # The query's answer is now a product from its own top 3, so the typed queries score
    # at least as well, and the runs differ.
    assert judged["text"]["recall@5"] >= plain["text"]["recall@5"]
    assert judged["text"] != plain["text"]


def test_an_unsaved_fusion_is_graded_beside_the_profile(client: TestClient) -> None:
    bm25_only = {
        "method": "rrf",
        "weights": {"image": 1, "image_text": 0, "text_image": 0, "text_text": 0, "bm25": 1},
    }
    resp = client.post(
        "/v1/eval/run", json={"query_set": "mini", "fusion": bm25_only}, headers=ADMIN
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    variant = body["variants"]["fusion"]
    assert variant["text"]["n"] == 12 and variant["image"]["n"] == 8
    # Only BM25 runs for the typed queries, so the variant equals the bm25 leg alone.
    assert {m: variant["text"][m] for m in SCORES} == {m: body["legs"]["bm25"][m] for m in SCORES}
    assert {m: variant["image"][m] for m in SCORES} == {m: body["legs"]["image"][m] for m in SCORES}
    bad = client.post(
        "/v1/eval/run",
        json={"query_set": "mini", "fusion": {"weights": {"nope": 1}}},
        headers=ADMIN,
    )
    assert bad.status_code == 422 and "nope" in bad.text


def test_a_sets_queries_are_listed_with_their_photos(
    client: TestClient, mini_queries: Path
) -> None:
    body = client.get("/v1/eval/query-sets/mini/queries", headers=ADMIN).json()
    queries = body["queries"]
    photos = [q for q in queries if q["kind"] == "image"]
    typed = [q for q in queries if q["kind"] == "text"]
    assert len(photos) == 8 and len(typed) == 12
    assert all(q["text"] for q in typed) and all(q["query_key"].startswith("text:") for q in typed)
    first = photos[0]
    sent = client.get(first["image_url"], headers=ADMIN)
    assert sent.status_code == 200 and sent.headers["content-type"] == "image/jpeg"
    on_disk = (mini_queries / "images" / first["label"]).read_bytes()
    assert sent.content == on_disk  # byte for byte: its sha256 is the judgement key
    assert first["query_key"] == "image:" + hashlib.sha256(on_disk).hexdigest()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/eval/query-sets/nope/queries", 404),
        ("/v1/eval/query-sets/mini/photos/999", 404),
        ("/v1/eval/query-sets/mini/photos/-1", 422),
    ],
)
def test_unknown_sets_and_photos_are_404(client: TestClient, path: str, status: int) -> None:
    resp = client.get(path, headers=ADMIN)
    assert resp.status_code == status, resp.text
    assert resp.json()["detail"]


def test_a_typed_querys_position_has_no_photo(client: TestClient) -> None:
    queries = client.get("/v1/eval/query-sets/mini/queries", headers=ADMIN).json()["queries"]
    text_at = next(i for i, q in enumerate(queries) if q["kind"] == "text")
    resp = client.get(f"/v1/eval/query-sets/mini/photos/{text_at}", headers=ADMIN)
    assert resp.status_code == 404
    assert "no photo" in resp.json()["detail"]


def test_set_queries_need_the_key(client: TestClient) -> None:
    assert client.get("/v1/eval/query-sets/mini/queries").status_code == 401
    assert client.get("/v1/eval/query-sets/mini/photos/0").status_code == 401


def test_worst_lists_the_lowest_scoring_queries_of_each_blend(client: TestClient) -> None:
    # typed queries through text→image alone: the fake encoder's text and image vectors are
    # unrelated, so this blend must miss typed queries that the profile gets right
    edited = {"method": "rrf", "weights": {"bm25": 0, "text_text": 0, "text_image": 1}}
    doc = client.post(
        "/v1/eval/run", headers=ADMIN, json={"query_set": "mini", "fusion": edited, "worst": 15}
    ).json()
    for worst in (doc["worst"], doc["variants"]["fusion"]["worst"]):
        assert len(worst) <= 15
        scores = [(w["ndcg@10"], w["mrr"]) for w in worst]
        assert scores == sorted(scores)
        assert all(w["ndcg@10"] < 1 and w["results"] is not None for w in worst)
    # the edited blend's worst list is its own
    typed_worst = [w for w in doc["variants"]["fusion"]["worst"] if w["kind"] == "text"]
    assert typed_worst, "text→image alone should miss some typed query"
    assert doc["variants"]["fusion"]["worst"] != doc["worst"]
    plain = client.post("/v1/eval/run", headers=ADMIN, json={"query_set": "mini"}).json()
    assert "worst" not in plain


def test_worst_is_bounded(client: TestClient) -> None:
    resp = client.post("/v1/eval/run", headers=ADMIN, json={"query_set": "mini", "worst": 101})
    assert resp.status_code == 422
