"""``snapshop tune`` and ``snapshop queryset`` through the real CLI, on a copy of the mini store."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from app.evaluation.querysets import QuerySetError, QuerySetStore
from app.evaluation.search import EvalQuery
from app.profiles import ProfileRepository
from tests.helpers import copy_data_dir, snapshop_cmd


@pytest.fixture(scope="module")
def data_dir(ingested_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("tune_cli") / "data"
    copy_data_dir(ingested_dir, copy)
    return copy


def _run(data_dir: Path, bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*snapshop_cmd(data_dir, bundle), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_tune_reports_both_splits_and_saves_a_new_version(
    data_dir: Path, tiny_bundle: Path, mini_queries: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tune.json"
    proc = _run(
        data_dir,
        tiny_bundle,
        "tune",
        str(mini_queries),
        "--trials",
        "40",
        "--validation",
        "0.4",
        "--save",
        "tuned",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "best on train" in proc.stdout and "start (default@0)" in proc.stdout
    body = json.loads(out.read_text())
    assert body["profile"] == "default@0" and body["metric"] == "ndcg@10"
    assert body["queries"]["train"] + body["queries"]["validation"] == 20
    assert body["queries"]["validation"] > 0
    for side in ("base", "best"):
        assert 0 <= body[side]["train"] <= 1 and 0 <= body[side]["validation"] <= 1
    # Chosen on train: never worse there than where it started.
    assert body["best"]["train"] >= body["base"]["train"]
    repo = ProfileRepository(data_dir / "profiles.sqlite")
    try:
        if body["improved"]:
            assert body["saved"] == "tuned@1"
            saved = repo.get("tuned")
            assert saved.method == body["best"]["fusion"]["method"]
            assert saved.weights == body["best"]["fusion"]["weights"]
            assert "validation" in saved.description
        else:
            assert "saved" not in body and repo.versions("tuned") == []
    finally:
        repo.close()


def test_tune_refuses_bad_options(data_dir: Path, tiny_bundle: Path, mini_queries: Path) -> None:
    metric = _run(data_dir, tiny_bundle, "tune", str(mini_queries), "--metric", "p@3")
    assert metric.returncode == 2 and "unknown metric" in metric.stderr
    method = _run(data_dir, tiny_bundle, "tune", str(mini_queries), "--methods", "borda")
    assert method.returncode == 2 and "borda" in method.stderr


def test_query_sets_store_a_snapshot_for_eval(
    data_dir: Path, tiny_bundle: Path, mini_queries: Path, tmp_path: Path
) -> None:
    added = _run(data_dir, tiny_bundle, "queryset", "add", "mini", str(mini_queries))
    assert added.returncode == 0, added.stderr
    assert "8 photo and 12 typed queries" in added.stdout
    listed = _run(data_dir, tiny_bundle, "queryset", "list")
    assert "mini" in listed.stdout
    from_set = tmp_path / "set.json"
    from_files = tmp_path / "files.json"
    one = _run(data_dir, tiny_bundle, "eval", "--query-set", "mini", "--json", str(from_set))
    two = _run(data_dir, tiny_bundle, "eval", str(mini_queries), "--json", str(from_files))
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    a, b = json.loads(from_set.read_text()), json.loads(from_files.read_text())
    for kind in ("image", "text"):
        assert a[kind]["ndcg@10"] == b[kind]["ndcg@10"] and a[kind]["n"] == b[kind]["n"]
    both = _run(data_dir, tiny_bundle, "eval", str(mini_queries), "--query-set", "mini")
    assert both.returncode == 2 and "not both" in both.stderr
    removed = _run(data_dir, tiny_bundle, "queryset", "remove", "mini")
    assert removed.returncode == 0
    gone = _run(data_dir, tiny_bundle, "eval", "--query-set", "mini")
    assert gone.returncode == 2 and "no query set 'mini'" in gone.stderr


def test_query_set_store_round_trip(tmp_path: Path) -> None:
    sets = QuerySetStore(tmp_path / "q.sqlite")
    photo = EvalQuery("i1", "image", "a.jpg", frozenset({"p1"}), "image:x", image=b"\xff\xd8jpeg")
    typed = EvalQuery("t1", "text", "blue shirt", frozenset({"p2", "p3"}), "text:blue shirt")
    typed = EvalQuery(
        typed.query_id, typed.kind, typed.label, typed.relevant, typed.key, text="blue shirt"
    )
    sets.save("dev", [photo, typed], "here")
    loaded = sets.load("dev")
    assert [q.query_id for q in loaded] == ["i1", "t1"]
    assert loaded[0].image == b"\xff\xd8jpeg" and loaded[0].key.startswith("image:")
    assert loaded[1].relevant == frozenset({"p2", "p3"}) and loaded[1].key == "text:blue shirt"
    sets.save("dev", [typed], "again")  # a name saved again is replaced whole
    assert [q.query_id for q in sets.load("dev")] == ["t1"]
    assert sets.info("dev").text_queries == 1 and sets.info("dev").image_queries == 0
    with pytest.raises(QuerySetError, match="known: dev"):
        sets.load("other")
    with pytest.raises(QuerySetError, match="name"):
        sets.save("Bad Name", [typed])
    with pytest.raises(QuerySetError, match="empty"):
        sets.save("empty", [])
    assert sets.delete("dev") and not sets.delete("dev")
    sets.close()
