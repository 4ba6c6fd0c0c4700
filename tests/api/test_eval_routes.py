"""POST /v1/eval/run on a stored query set: same numbers as ``snapshop eval`` on the files.

The comparison with the CLI runs on the real tiny bundle (the CLI process loads it from disk);
every other test here checks the API's contract, on the fake encoder.
"""

from __future__ import annotations

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
