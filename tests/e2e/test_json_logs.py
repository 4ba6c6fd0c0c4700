"""``SNAPSHOP_LOG_FORMAT=json`` on a real server process (uvicorn, the real app, the fake
encoder): every line it writes is one JSON object, uvicorn's own included, and each request's
access line names its method, route, status, duration and the id its response returned."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from tests.fake_serve import fake_serve_cmd
from tests.helpers import copy_data_dir, running_server


def test_a_json_server_logs_one_object_per_line_with_request_ids(
    fake_ingested_dir: Path, tmp_path: Path
) -> None:
    data = copy_data_dir(fake_ingested_dir, tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSHOP_")}
    env["SNAPSHOP_LOG_FORMAT"] = "json"
    log = tmp_path / "server.log"
    with running_server([*fake_serve_cmd(data), "--access-log"], env=env, log_file=log) as url:
        ok = httpx.get(f"{url}/v1/search", params={"q": "shirt"}, headers={"X-Request-ID": "e2e-1"})
        missing = httpx.get(f"{url}/v1/products/nope")
        assert ok.status_code == 200 and missing.status_code == 404
        generated = missing.headers["x-request-id"]
        assert missing.json()["request_id"] == generated
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line parses: nothing else in it
    assert any(r["logger"].startswith("uvicorn") for r in records)  # its startup lines too

    access = {r["request_id"]: r for r in records if r["logger"] == "snapshop.access"}
    search = access["e2e-1"]
    assert (search["method"], search["route"], search["status"]) == ("GET", "/v1/search", 200)
    assert search["duration_ms"] > 0 and search["level"] == "INFO"
    assert search["path"] == "/v1/search"  # the query string (what a shopper typed) is not
    assert "shirt" not in json.dumps(search)
    product = access[generated]
    assert (product["route"], product["status"]) == ("/v1/products/{product_id}", 404)
