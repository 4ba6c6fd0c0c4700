"""Browser tests: the real server on loopback, a small real catalog, Debian's Chromium.

The catalog is 40 dev products (16 grocery with their shop-shelf photos, 24 fashion). The model
is snapshop's own recipe trained for a few steps on it, so a shelf photo finds its product the
way it does in production; the photo each test uploads is one the training held out.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import running_server, snapshop_cmd, write_catalog

ADMIN_KEY = "browser-tests-admin-key-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
MOBILE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
TRAIN_STEPS = 40


@pytest.fixture(scope="session")
def browser_catalog(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Path:
    """40 products in the catalog format, plus ``queries/`` with their shelf photos.

    Images are symlinked: nothing of the shared catalog is copied.
    """
    with (catalog_dir / "products.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    grocery = [r for r in rows if r["product_id"].startswith("grocery_")][::5][:16]
    fashion = [r for r in rows if r["product_id"].startswith("fashion_")][::130][:24]
    picked = grocery + fashion
    root = write_catalog(tmp_path_factory.mktemp("browser_catalog"), catalog_dir, fields, picked)
    ids = {r["product_id"] for r in picked}
    queries = root / "queries"
    (queries / "images").mkdir(parents=True)
    source = catalog_dir / "dev_queries"
    with (source / "image_queries.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        qfields = list(reader.fieldnames or [])
        qrows = [r for r in reader if r["relevant_product_ids"] in ids]
    with (queries / "image_queries.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=qfields)
        writer.writeheader()
        writer.writerows(qrows)
    for r in qrows:
        name = Path(r["query_image"]).name
        (queries / "images" / name).symlink_to(source / "images" / name)
    with (queries / "text_queries.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query_id", "query", "relevant_product_ids", "match_rule"])
        for i, r in enumerate(picked[::5]):
            writer.writerow([f"t{i}", " ".join(r["title"].split()[:3]), r["product_id"], "title"])
    return root


@pytest.fixture(scope="session")
def browser_bundle(tmp_path_factory: pytest.TempPathFactory, browser_catalog: Path) -> Path:
    """snapshop's default recipe (ImageNet image tower, locked MiniLM), a few seeded steps."""
    out = tmp_path_factory.mktemp("browser_model") / "bundle"
    cmd = [
        *snapshop_cmd(out.parent / "data", out),
        "model",
        "train",
        "--catalog",
        str(browser_catalog),
        "--out",
        str(out),
        "--steps",
        str(TRAIN_STEPS),
        "--extra-pairs",
        str(browser_catalog / "queries" / "image_queries.csv"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def held_out_photo(browser_bundle: Path, browser_catalog: Path) -> tuple[Path, str]:
    """The first shelf photo the training held out, and its product: (path, product id)."""
    manifest = json.loads((browser_bundle / "manifest.json").read_text())
    held = manifest["extra"]["training"]["held_out_photo_ids"]
    queries = browser_catalog / "queries"
    with (queries / "image_queries.csv").open(newline="") as fh:
        by_id = {r["query_id"]: r for r in csv.DictReader(fh)}
    first = by_id[held[0]]
    return queries / first["query_image"], first["relevant_product_ids"]


@pytest.fixture(scope="session")
def site(
    tmp_path_factory: pytest.TempPathFactory, browser_catalog: Path, browser_bundle: Path
) -> Iterator[str]:
    """``snapshop serve`` on loopback over the ingested catalog, with the query set ``dev``."""
    data = tmp_path_factory.mktemp("browser_data")
    base = snapshop_cmd(data, browser_bundle)
    for step in (
        ["ingest", str(browser_catalog)],
        ["queryset", "add", "dev", str(browser_catalog / "queries")],
    ):
        proc = subprocess.run([*base, *step], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    env = {**os.environ, "SNAPSHOP_ADMIN_KEY": ADMIN_KEY}
    with running_server(base, env=env) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium", pytrace=False)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def new_page(browser: Any, viewport: dict[str, int]) -> Any:
    context = browser.new_context(viewport=viewport, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    return page


def screenshot(page: Any, name: str, full_page: bool = True) -> Path:
    """Saved under test-artifacts/screenshots/<name>-<width>.png (the README's: ``readme-*``)."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{page.viewport_size['width']}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def serious_violations(page: Any) -> list[tuple[str, str, int]]:
    """axe-core's serious and critical findings on the page as it is now: (rule, impact, nodes)."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [
        (v["id"], v["impact"], len(v["nodes"]))
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def record_metric(name: str, value: float) -> None:
    """Numbers for the closing note (time to first result, page weight), kept as JSON."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "browser-metrics.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = value
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def api(site: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"X-API-Key": ADMIN_KEY, **kwargs.pop("headers", {})}
    return httpx.request(method, f"{site}{path}", headers=headers, timeout=60, **kwargs)
