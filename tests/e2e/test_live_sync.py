"""Live sync against a real server process: ``snapshop ingest`` handing its run to ``serve``,
and a server SIGKILLed in the middle of profile and judgement writes.

The server is the real app under uvicorn with the fake encoder (``tests/fake_serve.py``), so
no model bundle is needed: what is tested is the process, the store and the HTTP contract.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx

from app.api.announce import SERVER_FILE
from ingestion.runs import list_runs
from tests.fake_serve import fake_serve_cmd
from tests.helpers import copy_data_dir, running_server, snapshop_cmd

KEY = "live-sync-admin-key-0123456789"
ADMIN = {"X-API-Key": KEY}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSHOP_")}
    return {**env, **extra}


def test_ingest_hands_its_sync_to_the_running_server(tmp_path: Path, mini_catalog: Path) -> None:
    data = tmp_path / "data"
    no_model = tmp_path / "no-such-bundle"  # the hand-off needs no model in the CLI
    with running_server(fake_serve_cmd(data), env=_env(SNAPSHOP_ADMIN_KEY=KEY)) as url:
        announced = json.loads((data / SERVER_FILE).read_text())
        assert announced["url"] == url

        without_key = subprocess.run(
            [*snapshop_cmd(data, no_model), "ingest", str(mini_catalog)],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        assert without_key.returncode == 2
        assert "SNAPSHOP_ADMIN_KEY" in without_key.stderr and url in without_key.stderr

        # stdout and stderr are pipes, not a terminal: progress must still come as lines.
        proc = subprocess.run(
            [*snapshop_cmd(data, no_model), "ingest", str(mini_catalog), "--batch-size", "8"],
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(SNAPSHOP_ADMIN_KEY=KEY),
        )
        assert proc.returncode == 0, proc.stderr
        assert f"runs in {url}" in proc.stderr
        assert "embedded 50/50 images" in proc.stderr
        assert "added 50, updated 0, deleted 0, unchanged 0 products" in proc.stderr
        assert proc.stdout.strip() == "ingested 50 products, 50 images, 0 rejected"
        assert httpx.get(f"{url}/healthz").json()["store"]["points"] == 50

        again = subprocess.run(
            [*snapshop_cmd(data, no_model), "ingest", str(tmp_path / "missing")],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(SNAPSHOP_ADMIN_KEY=KEY),
        )
        assert again.returncode == 2 and str(tmp_path / "missing") in again.stderr
    assert not (data / SERVER_FILE).exists()  # removed at shutdown
    (run,) = list_runs(data / "runs")
    assert run.state == "ok" and run.counts["added"] == 50


def test_sigkill_during_writes_loses_nothing_acknowledged(
    tmp_path: Path, fake_ingested_dir: Path
) -> None:
    data = copy_data_dir(fake_ingested_dir, tmp_path / "data")
    acked_marks: list[tuple[str, str, bool]] = []  # (judge, product, relevant)
    acked_profiles: list[tuple[str, int, float]] = []  # (name, version, bm25 weight)
    stop = threading.Event()
    errors: list[str] = []

    with running_server(fake_serve_cmd(data), env=_env(SNAPSHOP_ADMIN_KEY=KEY)) as url:
        hits = httpx.get(f"{url}/v1/search", params={"q": "men", "k": 10}).json()["results"]
        products = [r["product_id"] for r in hits]
        assert len(products) == 10
        pid = json.loads((data / SERVER_FILE).read_text())["pid"]

        def mark(judge: str) -> None:
            with httpx.Client(base_url=url, headers=ADMIN, timeout=10) as c:
                i = 0
                while not stop.is_set():
                    # A judge name per write: no later write replaces an acknowledged one.
                    who, product, relevant = f"{judge}-{i}", products[i % len(products)], i % 2
                    body = {"query": "men", "product_id": product, "relevant": bool(relevant)}
                    try:
                        r = c.post("/v1/judgements", json={**body, "judge": who})
                    except httpx.TransportError:
                        return  # the kill: this write was never acknowledged
                    if r.status_code == 201:
                        acked_marks.append((who, product, bool(relevant)))
                    else:
                        errors.append(f"{r.status_code} {r.text}")
                    i += 1

        def profile(name: str) -> None:
            with httpx.Client(base_url=url, headers=ADMIN, timeout=10) as c:
                i = 0
                while not stop.is_set():
                    weight = 1.0 + i
                    body = {"method": "rrf", "weights": {"bm25": weight}}
                    try:
                        r = c.put(f"/v1/fusion/profiles/{name}", json=body)
                    except httpx.TransportError:
                        return
                    if r.status_code == 200:
                        acked_profiles.append((name, r.json()["version"], weight))
                    else:
                        errors.append(f"{r.status_code} {r.text}")
                    i += 1

        writers = [threading.Thread(target=mark, args=(f"judge{i}",)) for i in range(3)]
        writers += [threading.Thread(target=profile, args=(f"prof{i}",)) for i in range(3)]
        for t in writers:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked_marks) + len(acked_profiles) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)  # mid-stream: the writers are still sending
        for t in writers:
            t.join(timeout=20)
        stop.set()
    assert not errors
    assert len(acked_marks) >= 30 and len(acked_profiles) >= 30

    for name in ("judgements.sqlite", "profiles.sqlite"):
        with sqlite3.connect(data / name) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    with (
        running_server(fake_serve_cmd(data), env=_env(SNAPSHOP_ADMIN_KEY=KEY)) as url,
        httpx.Client(base_url=url, headers=ADMIN, timeout=10) as c,
    ):
        for judge, product, relevant in acked_marks:
            params = {"judge": judge, "product_id": product}
            rows = c.get("/v1/judgements", params=params).json()["judgements"]
            assert [r["relevant"] for r in rows] == [relevant], (judge, product)
        for name, version, weight in acked_profiles:
            r = c.get(f"/v1/fusion/profiles/{name}", params={"version": version})
            assert r.status_code == 200, (name, version)
            assert r.json()["weights"]["bm25"] == weight
