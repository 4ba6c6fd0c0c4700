"""A model swap without downtime, against a real server process: client threads search while a
second model's collection is built beside the live one and swapped in.

Checked: no request fails; every answer to a request sent after the swap returned names the
new model, every answer received before it was asked names the old one; both collections are
listed while they coexist; the live one cannot be dropped, the old one can.

The second model (``NarrowFakeEncoder``) makes vectors of another size, so a query embedded by
one model and sent to the other's collection would not return a wrong answer quietly: the
engine refuses it, and the request fails. Run on the embedded engine and on the server backend
(qdrant-client's local mode standing in for a Qdrant server; one process, so the server builds
the new collection itself, as it does for the embedded engine).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_live_sync import _env
from tests.fake_serve import fake_serve_cmd, write_fake_bundle
from tests.fakes import FakeEncoder, NarrowFakeEncoder
from tests.helpers import running_server

KEY = "model-swap-admin-key-0123456789"
ADMIN = {"X-API-Key": KEY}
THREADS = 6
AFTER_S = 1.0  # queries kept running after the swap
WORDS = ["shirt", "shoes", "watch", "bag", "black", "blue", "men", "women", "rice", "tea"]


def _sync(admin: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = admin.post("/v1/admin/sync", json=body)
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = admin.get(f"/v1/admin/sync/{job['job']}").json()
    assert job["state"] == "done", job
    return job


@pytest.mark.parametrize("backend", ["embedded", "server-local"])
def test_searches_keep_answering_while_a_new_model_is_built_and_swapped_in(
    tmp_path: Path, mini_catalog: Path, backend: str
) -> None:
    env = _env(SNAPSHOP_ADMIN_KEY=KEY)
    if backend == "server-local":
        env["SNAPSHOP_QDRANT_PATH"] = str(tmp_path / "qdrant-local")
    narrow = write_fake_bundle(tmp_path / "bundles" / "narrow", "narrow")
    answers: list[tuple[float, float, str]] = []  # (sent, received, model)
    errors: list[str] = []
    stop = threading.Event()

    def client(seed: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            i = seed
            while not stop.is_set():
                i += 1
                sent = time.monotonic()
                try:
                    r = c.get("/v1/search", params={"q": WORDS[i % len(WORDS)], "k": 10})
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    continue
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:300]}")
                    continue
                answers.append((sent, time.monotonic(), r.json()["model"]))

    data = tmp_path / "data"
    with (
        running_server(fake_serve_cmd(data), env=env) as url,
        httpx.Client(base_url=url, headers=ADMIN, timeout=30) as admin,
    ):
        first = _sync(admin, {"catalog": str(mini_catalog)})
        products = first["result"]["counts"]["products"]
        assert products == 50 and first["model"] == FakeEncoder.model_id
        old = admin.get("/v1/admin/collections").json()["live"]
        assert old is not None

        threads = [threading.Thread(target=client, args=(i, url)) for i in range(THREADS)]
        for t in threads:
            t.start()
        try:
            built = _sync(
                admin, {"catalog": str(mini_catalog), "new_collection": True, "model": str(narrow)}
            )
            new = built["collection"]
            assert built["model"] == NarrowFakeEncoder.model_id and new != old
            assert built["result"]["counts"]["added"] == products

            listed = admin.get("/v1/admin/collections").json()
            assert listed["live"] == old
            rows = {c["name"]: c for c in listed["collections"]}
            assert set(rows) == {old, new}
            assert rows[old]["model"] == FakeEncoder.model_id and rows[old]["live"]
            assert rows[new]["model"] == NarrowFakeEncoder.model_id and not rows[new]["live"]
            assert rows[new]["points"] == rows[old]["points"] > 0
            assert rows[new]["bundle"] == str(narrow.resolve())

            asked = time.monotonic()
            swapped = admin.post("/v1/admin/collections/swap", json={"collection": new})
            done = time.monotonic()
            assert swapped.status_code == 200, swapped.text
            assert swapped.json() == {
                "live": new,
                "model": NarrowFakeEncoder.model_id,
                "previous": old,
            }
            time.sleep(AFTER_S)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)

        health = admin.get("/healthz").json()
        assert health["model"] == NarrowFakeEncoder.model_id
        assert health["store"]["collection"] == new
        assert health["store"]["model"] == NarrowFakeEncoder.model_id

        refused = admin.delete(f"/v1/admin/collections/{new}")
        assert refused.status_code == 409 and "live" in refused.json()["detail"]
        assert admin.delete(f"/v1/admin/collections/{old}").json() == {"dropped": old}
        after = admin.get("/v1/admin/collections").json()["collections"]
        assert [(c["name"], c["live"]) for c in after] == [(new, True)]
        # the live collection still syncs, with its own model
        resync = _sync(admin, {"catalog": str(mini_catalog)})
        assert resync["collection"] == new and resync["result"]["counts"]["unchanged"] == 50

    assert not errors, errors[:5]
    before = [m for sent, got, m in answers if got < asked]
    after_swap = [m for sent, got, m in answers if sent > done]
    assert len(before) > THREADS and len(after_swap) > THREADS  # queries ran all along
    assert set(before) == {FakeEncoder.model_id}
    assert set(after_swap) == {NarrowFakeEncoder.model_id}
