"""End to end, all real: CLI ingest into a temp dir, `snapshop serve` on loopback, HTTP queries."""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import running_server, snapshop_cmd


@pytest.fixture(scope="module")
def server(ingested_dir: Path, tiny_bundle: Path) -> Iterator[str]:
    with running_server(snapshop_cmd(ingested_dir, tiny_bundle)) as base:
        yield base


def _products(catalog: Path) -> list[dict[str, str]]:
    with (catalog / "products.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_ingest_reports_every_product(ingest_output: str) -> None:
    assert ingest_output.strip().splitlines()[-1] == "ingested 50 products, 50 images, 0 rejected"


def test_cli_ingest_writes_its_counters_for_the_textfile_collector(ingested_dir: Path) -> None:
    text = (ingested_dir / "ingest.prom").read_text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("snapshop_ingest_runs_total", (("outcome", "done"),))] == 1
    assert samples[("snapshop_ingest_runs_total", (("outcome", "failed"),))] == 0
    assert samples[("snapshop_ingest_products_total", (("change", "added"),))] == 50
    assert samples[("snapshop_ingest_images_embedded_total", ())] == 50
    assert samples[("snapshop_ingest_rejects_total", ())] == 0


def test_healthz_reports_model_and_provider(server: str, tiny_bundle: Path) -> None:
    body = httpx.get(f"{server}/healthz").json()
    assert body["status"] == "ok"
    assert body["provider"] == "CPUExecutionProvider"
    assert body["store"]["points"] == 50
    assert body["model"] == body["store"]["model"]


def test_a_products_own_photo_finds_it_first(server: str, mini_catalog: Path) -> None:
    for row in _products(mini_catalog)[::5]:
        image = mini_catalog / "images" / row["image_files"].split(";")[0]
        resp = httpx.post(
            f"{server}/v1/search",
            files={"image": (image.name, image.read_bytes(), "image/jpeg")},
            data={"k": "5"},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["results"][0]["product_id"] == row["product_id"]
        assert body["legs"] == ["image", "image_text"]
        assert {"decode", "embed_image", "leg_image", "fusion", "total"} <= set(body["timings_ms"])


@pytest.mark.parametrize("prefix", ["Apparel", "Apparel/Topwear", "Grocery", "Footwear/Shoes"])
def test_category_filter_never_returns_another_category(
    server: str, mini_catalog: Path, prefix: str
) -> None:
    expected = {
        r["product_id"]
        for r in _products(mini_catalog)
        if (r["category"] + "/").lower().startswith(prefix.lower() + "/")
    }
    assert expected, f"the mini catalog has no {prefix} products"
    some_image = mini_catalog / "images" / _products(mini_catalog)[0]["image_files"]
    responses = [
        httpx.post(
            f"{server}/v1/search",
            files={"image": ("q.jpg", some_image.read_bytes(), "image/jpeg")},
            data={"k": "50", "category": prefix, "q": "shirt"},
            timeout=30,
        ),
        httpx.post(f"{server}/v1/search", json={"q": "black", "k": 50, "category": prefix}),
        httpx.get(f"{server}/v1/search", params={"q": "men", "k": 50, "category": prefix}),
    ]
    for resp in responses:
        assert resp.status_code == 200, resp.text
        got = {r["product_id"] for r in resp.json()["results"]}
        assert got, "a filtered query with matching products returned nothing"
        assert got <= expected
        for r in resp.json()["results"]:
            assert (r["category"] + "/").lower().startswith(prefix.lower() + "/")


def test_text_query_answers_with_all_text_legs(server: str) -> None:
    resp = httpx.get(f"{server}/v1/search", params={"q": "shirt"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["legs"] == ["text_image", "text_text", "bm25"]
    assert 0 < len(body["results"]) <= 10
    # BM25 matched "shirt": at least one shirt title in the fused top 10.
    assert any("shirt" in r["title"].lower() for r in body["results"])


def test_bad_requests_get_a_reason(server: str) -> None:
    resp = httpx.post(f"{server}/v1/search", json={})
    assert resp.status_code == 422
    assert "q" in resp.json()["detail"]
    resp = httpx.post(
        f"{server}/v1/search", files={"image": ("x.jpg", b"not an image", "image/jpeg")}
    )
    assert resp.status_code == 422
    assert "could not be decoded" in resp.json()["detail"]


def test_metrics_count_the_real_encoder_and_store(server: str, tiny_bundle: Path) -> None:
    assert httpx.get(f"{server}/v1/search", params={"q": "blue shirt"}).status_code == 200
    text = httpx.get(f"{server}/metrics").text
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    value = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}
    assert value[("snapshop_encoder_batch_size_count", (("tower", "text"),))] >= 1
    assert value[("snapshop_search_leg_seconds_count", (("leg", "bm25"),))] >= 1
    assert value[("snapshop_store_points", ())] == 50
    assert value[("snapshop_store_products", ())] == 50
    (info,) = [s for s in samples if s.name == "snapshop_model_info"]
    assert info.labels["provider"] == "CPUExecutionProvider"
    assert info.labels["model"] == httpx.get(f"{server}/healthz").json()["model"]


def test_openapi_docs_are_served(server: str) -> None:
    assert httpx.get(f"{server}/docs").status_code == 200
    spec = httpx.get(f"{server}/openapi.json").json()
    assert "/v1/search" in spec["paths"]
    assert "multipart/form-data" in spec["paths"]["/v1/search"]["post"]["requestBody"]["content"]


def test_cli_search_while_serving_says_the_store_is_busy(
    ingested_dir: Path, tiny_bundle: Path, server: str
) -> None:
    # An embedded shard allows one process: the CLI must say so, not crash with a traceback.
    proc = subprocess.run(
        [*snapshop_cmd(ingested_dir, tiny_bundle), "search", "--text", "shirt"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "open in another snapshop process" in proc.stderr
