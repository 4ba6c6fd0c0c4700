"""``serve --workers N``: several server processes for a Qdrant server, refused for the stores
that admit one process, and one Prometheus scrape summing every worker's counters.

No Qdrant server can run here (no container engine, none on PyPI), so the workers point at a
loopback port where nothing listens: the API starts without its store (``/healthz`` answers,
``/readyz`` says 503), which is all the process and metrics checks need.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector

from tests.e2e.test_live_sync import _env
from tests.fake_serve import fake_serve_cmd
from tests.helpers import free_port, running_server, snapshop_cmd

HEALTHZ = re.compile(
    r'^snapshop_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)$', re.M
)


def test_serve_refuses_several_workers_on_a_one_process_store(tmp_path: Path) -> None:
    for extra in ({}, {"SNAPSHOP_QDRANT_PATH": str(tmp_path / "local")}):
        proc = subprocess.run(
            [*snapshop_cmd(tmp_path / "data", tmp_path / "no-bundle"), "serve", "--workers", "2"],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(**extra),
        )
        assert proc.returncode == 2, proc.stderr
        assert "--workers 2 needs a Qdrant server (SNAPSHOP_QDRANT_URL)" in proc.stderr
        assert "one process" in proc.stderr


def _healthz_count(url: str) -> float:
    body = httpx.get(f"{url}/metrics", timeout=10).text
    found = HEALTHZ.search(body)
    return float(found.group(1)) if found else 0.0


def _per_worker(folder: Path) -> dict[str, float]:
    """Each worker's own /healthz count, read from its own counter file."""
    out = {}
    for db in folder.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(db)]):
            for sample in family.samples:
                if sample.name == "snapshop_http_requests_total" and sample.labels == {
                    "method": "GET",
                    "route": "/healthz",
                    "status": "200",
                }:
                    out[db.stem] = sample.value
    return out


def test_two_workers_answer_and_one_scrape_sums_them(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    env = _env(
        SNAPSHOP_QDRANT_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        PROMETHEUS_MULTIPROC_DIR=str(metrics),
    )
    cmd = [*fake_serve_cmd(tmp_path / "data"), "--workers", "2"]
    with running_server(cmd, env=env, timeout=90) as url:
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 503  # no Qdrant there
        before = _healthz_count(url)
        sent = 0
        # Until both workers have answered some (the kernel hands connections to either).
        while sent < 400 and len([v for v in _per_worker(metrics).values() if v]) < 2:
            threads = [
                threading.Thread(target=httpx.get, args=(f"{url}/healthz",)) for _ in range(8)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
            sent += len(threads)
        # A worker counts a request as its response goes out, so the client can read the
        # files a moment before the last counts land: wait for them (bounded).
        deadline = time.monotonic() + 10
        while _healthz_count(url) - before < sent and time.monotonic() < deadline:
            time.sleep(0.05)
        per_worker = _per_worker(metrics)
        assert len([v for v in per_worker.values() if v]) == 2, per_worker
        # Whichever worker answers the scrape, it counts every worker's requests.
        assert _healthz_count(url) - before == sent
        assert _healthz_count(url) == sum(per_worker.values())
