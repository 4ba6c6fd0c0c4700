"""The CLI runs the same search service as the API, and never imports torch to do it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from fastapi.testclient import TestClient

from app.api.main import create_app
from app.settings import Settings
from tests.helpers import snapshop_cmd


def _cli_json(data_dir: Path, bundle: Path, *args: str) -> dict:
    proc = subprocess.run(
        [*snapshop_cmd(data_dir, bundle), "search", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_cli_and_api_return_the_same_results(
    ingested_dir: Path, tiny_bundle: Path, mini_catalog: Path
) -> None:
    image = next((mini_catalog / "images").iterdir())
    cli_text = _cli_json(ingested_dir, tiny_bundle, "--text", "black shirt", "--k", "7")
    cli_image = _cli_json(ingested_dir, tiny_bundle, "--image", str(image), "--k", "7")
    app = create_app(Settings(data_dir=ingested_dir, model=tiny_bundle))
    with TestClient(app) as client:
        api_text = client.post("/v1/search", json={"q": "black shirt", "k": 7}).json()
        api_image = client.post(
            "/v1/search", files={"image": ("q.jpg", image.read_bytes())}, data={"k": "7"}
        ).json()
    for cli, api in ((cli_text, api_text), (cli_image, api_image)):
        assert set(cli) == set(api)
        assert {"results", "timings_ms", "model", "legs", "profile", "fusion"} <= set(cli)
        assert cli["profile"] == api["profile"] and cli["legs"] == api["legs"]
        assert [r["product_id"] for r in cli["results"]] == [
            r["product_id"] for r in api["results"]
        ]
        assert [r["score"] for r in cli["results"]] == [r["score"] for r in api["results"]]
        assert len(cli["results"]) == 7


def test_search_path_never_imports_torch(ingested_dir: Path, tiny_bundle: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from fastapi.testclient import TestClient
        from app.api.main import create_app
        from app.cli import app as cli
        from app.settings import Settings

        cli(["--data-dir", {str(ingested_dir)!r}, "--model", {str(tiny_bundle)!r},
             "search", "--text", "shirt", "--json"], standalone_mode=False)
        api = create_app(Settings(data_dir={str(ingested_dir)!r}, model={str(tiny_bundle)!r}))
        with TestClient(api) as client:
            assert client.get("/v1/search", params={{"q": "shirt"}}).status_code == 200
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "open_clip"))
        print("LOADED", loaded)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout[-2000:]


def test_eval_scores_each_leg_and_the_hybrid(
    ingested_dir: Path, tiny_bundle: Path, mini_catalog: Path, tmp_path: Path
) -> None:
    import csv

    with (mini_catalog / "products.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))[:6]
    with (tmp_path / "text_queries.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query_id", "query", "relevant_product_ids"])
        for i, r in enumerate(rows):
            writer.writerow([f"t{i}", r["title"], r["product_id"]])
    out = tmp_path / "eval.json"
    proc = subprocess.run(
        [
            *snapshop_cmd(ingested_dir, tiny_bundle),
            "eval",
            "--text-queries",
            str(tmp_path / "text_queries.csv"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},  # rich wraps table cells to the terminal width
    )
    assert proc.returncode == 0, proc.stderr
    assert "leg bm25" in proc.stdout and "profile default@0" in proc.stdout  # the table
    result = json.loads(out.read_text())
    assert result["profile"] == "default@0" and result["model"]
    assert set(result["text"]) >= {"n", "recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"}
    assert result["text"]["n"] == 6
    assert set(result["legs"]) == {"text_image", "text_text", "bm25"}
    assert all(v["queries"] == "text" and v["n"] == 6 for v in result["legs"].values())
    # The exact title is a perfect keyword query: BM25 alone finds every product first.
    assert result["legs"]["bm25"]["recall@1"] == 1.0
    assert "image" not in result
    missing = subprocess.run(
        [*snapshop_cmd(ingested_dir, tiny_bundle), "eval"], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "--text-queries" in missing.stderr


def test_bench_search_times_both_modes_over_the_same_queries(
    ingested_dir: Path, tiny_bundle: Path, mini_queries: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            *snapshop_cmd(ingested_dir, tiny_bundle),
            "bench",
            "search",
            str(mini_queries),
            "--rounds",
            "1",
            "--limit",
            "6",
            "--concurrency",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result == json.loads(out.read_text())
    assert result["benchmark"] == "search" and result["queries"] == 6
    assert {"baseline", "micro_batch"} <= set(result)
