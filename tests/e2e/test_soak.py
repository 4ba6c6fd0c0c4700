"""Soak: 20 client threads search a real server while syncs add, update and delete 10 % of
the catalog, round after round.

Checked on every answer: no error; no product whose deletion was reported done before the
request was sent; every product whole (the title's version and the matched photos belong to
the same version of the product, never a mix of two). At the end the counts are exact.

``SNAPSHOP_SOAK_SECONDS`` sets the query time (10 s by default, CI); run the full soak with
``SNAPSHOP_SOAK_SECONDS=60 pytest -s tests/e2e/test_soak.py``: it prints requests served,
errors, p50/p99 latency and writes them to ``$SNAPSHOP_SOAK_REPORT`` when that is set.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.test_live_sync import ADMIN, KEY, _env
from tests.fake_serve import fake_serve_cmd
from tests.helpers import running_server

THREADS = 20
PRODUCTS = 100
SHARE = 0.10  # of the catalog added, updated and deleted in each round
FIELDS = ["product_id", "title", "category", "price", "image_files"]
VERSION = re.compile(r"\bv(\d+)\b")
WORDS = ["soak", "shirt", "shoes", "watch", "bag", "black", "blue", "men", "women", "sports"]


class Catalog:
    """The catalog a round syncs: products with two photos each; an update changes the title's
    version and one of the photos, so a half-applied update would show as a mix."""

    def __init__(self, root: Path, pool: list[str], source: Path) -> None:
        self.root = root
        self.pool = pool
        (root / "images").mkdir(parents=True)
        for name in pool:
            (root / "images" / name).symlink_to(source / "images" / name)
        self.products: dict[str, tuple[str, int, str, list[str]]] = {}  # id -> base, v, cat, images
        # (product, version) -> its photos: what a reader checks an answer against
        self.versions: dict[tuple[str, int], frozenset[str]] = {}
        self.serial = 0

    def put(self, pid: str, base: str, version: int, category: str) -> None:
        rng = random.Random(f"{pid}/{version}")
        images = rng.sample(self.pool, 2)
        self.versions[(pid, version)] = frozenset(images)
        self.products[pid] = (base, version, category, images)

    def write(self) -> None:
        tmp = self.root / "products.csv.tmp"
        with tmp.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS)
            w.writeheader()
            for pid, (base, v, cat, images) in self.products.items():
                title = f"{base} soak v{v}"
                w.writerow(
                    {
                        "product_id": pid,
                        "title": title,
                        "category": cat,
                        "price": "10",
                        "image_files": ";".join(images),
                    }
                )
        tmp.replace(self.root / "products.csv")  # the server never reads half a file

    def new_id(self) -> str:
        self.serial += 1
        return f"soak{self.serial:05d}"


def _sync(c: httpx.Client, catalog: Path) -> dict:
    r = c.post("/v1/admin/sync", json={"catalog": str(catalog), "prune": True, "batch_size": 8})
    assert r.status_code == 202, r.text
    job = r.json()
    while job["state"] in ("queued", "running"):
        time.sleep(0.05)
        job = c.get(f"/v1/admin/sync/{job['job']}").json()
    assert job["state"] == "done", job
    result: dict = job["result"]
    return result


def test_soak_searches_while_syncs_add_update_delete(tmp_path: Path, catalog_dir: Path) -> None:
    seconds = float(os.environ.get("SNAPSHOP_SOAK_SECONDS", "10"))
    with (catalog_dir / "products.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if ";" not in r["image_files"]][:400]
    pool = [r["image_files"] for r in rows]
    cat = Catalog(tmp_path / "catalog", pool, catalog_dir)
    for r in rows[:PRODUCTS]:
        cat.put(cat.new_id(), r["title"], 0, r["category"])
    cat.write()

    deleted_at: dict[str, float] = {}  # product -> when its deletion was reported done
    latencies: list[float] = []
    errors: list[str] = []
    ghosts: list[str] = []  # answers naming a product deleted before they were asked
    mixes: list[str] = []  # answers showing a product half old, half new
    stop = threading.Event()

    def client(seed: int, url: str) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                q = f"soak {rng.choice(WORDS)}"
                sent = time.monotonic()
                try:
                    r = c.get("/v1/search", params={"q": q, "k": 20})
                except httpx.HTTPError as exc:
                    errors.append(f"{q}: {exc!r}")
                    continue
                latencies.append(time.monotonic() - sent)
                if r.status_code != 200:
                    errors.append(f"{q}: {r.status_code} {r.text[:200]}")
                    continue
                for hit in r.json()["results"]:
                    pid = hit["product_id"]
                    gone = deleted_at.get(pid)
                    if gone is not None and gone < sent:
                        ghosts.append(pid)
                    m = VERSION.search(hit["title"])
                    images = cat.versions.get((pid, int(m.group(1)) if m else -1))
                    if images is None or not set(hit["matched_images"]) <= images:
                        mixes.append(f"{pid} {hit['title']!r} {hit['matched_images']}")

    data = tmp_path / "data"
    with (
        running_server(fake_serve_cmd(data), env=_env(SNAPSHOP_ADMIN_KEY=KEY)) as url,
        httpx.Client(base_url=url, headers=ADMIN, timeout=30) as admin,
    ):
        first = _sync(admin, cat.root)
        assert first["counts"]["added"] == PRODUCTS
        threads = [threading.Thread(target=client, args=(i, url)) for i in range(THREADS)]
        for t in threads:
            t.start()
        started, rounds, last = time.monotonic(), 0, first
        n = int(PRODUCTS * SHARE)
        while rounds == 0 or time.monotonic() - started < seconds:
            rounds += 1
            ids = list(cat.products)
            random.Random(rounds).shuffle(ids)
            gone, changed = ids[:n], ids[n : 2 * n]
            for pid in gone:
                del cat.products[pid]
            for pid in changed:
                base, v, category, _ = cat.products[pid]
                cat.put(pid, base, v + 1, category)
            for r in random.Random(-rounds).sample(rows, n):
                cat.put(cat.new_id(), r["title"], 0, r["category"])
            cat.write()
            last = _sync(admin, cat.root)
            done = time.monotonic()
            for pid in gone:
                deleted_at[pid] = done
            counts = last["counts"]
            assert (counts["added"], counts["updated"], counts["deleted"]) == (n, n, n)
        elapsed = time.monotonic() - started
        stop.set()
        for t in threads:
            t.join(timeout=60)
        health = admin.get("/healthz").json()
        final = admin.get("/v1/search", params={"q": "soak", "k": 100}).json()["results"]

    latencies.sort()
    report = {
        "seconds": round(elapsed, 1),
        "threads": THREADS,
        "sync_rounds": rounds,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "results_naming_deleted_products": len(ghosts),
        "half_written_products_seen": len(mixes),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "final_products": last["counts"]["products"],
        "final_points": health["store"]["points"],
    }
    print(json.dumps(report))
    if os.environ.get("SNAPSHOP_SOAK_REPORT"):
        Path(os.environ["SNAPSHOP_SOAK_REPORT"]).write_text(json.dumps(report, indent=2))
    assert not errors, errors[:5]
    assert not ghosts, ghosts[:5]
    assert not mixes, mixes[:5]
    assert len(latencies) > THREADS * seconds  # the searches really ran all along
    assert last["counts"]["products"] == len(cat.products) == PRODUCTS
    assert health["store"]["points"] == 2 * PRODUCTS
    assert {r["product_id"] for r in final} == set(cat.products)
