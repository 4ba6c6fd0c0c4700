"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import FakeEncoder

REPO_ROOT = Path(__file__).resolve().parents[1]
# The dev catalog lives beside the repository, in the shared checkout folder.
CATALOG_DIR = REPO_ROOT.parent / "shared" / "catalog"


@pytest.fixture(scope="session")
def catalog_dir() -> Path:
    """The dev catalog (products.csv + images/); tests need it, so missing is a failure."""
    if not (CATALOG_DIR / "images").is_dir():
        pytest.fail(
            f"dev catalog not found at {CATALOG_DIR} (expected {CATALOG_DIR / 'images'}); "
            "the tests need the shared catalog checked out beside the repository",
            pytrace=False,
        )
    return CATALOG_DIR


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Path:
    """A real bundle of the tiny random-weight architecture, exported once per session."""
    from app.embedding.export import export_bundle

    images = sorted((catalog_dir / "images").glob("*.jpg"))[:3]
    out = tmp_path_factory.mktemp("tiny_bundle") / "bundle"
    export_bundle("snapshop-tiny", "none", out, parity_images=images)
    return out


@pytest.fixture(scope="session")
def fake_encoder() -> FakeEncoder:
    """The deterministic stand-in encoder (tests/fakes.py): no bundle, no model quality."""
    return FakeEncoder()


@pytest.fixture(scope="session")
def mini_catalog(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Path:
    """50 real products (40 fashion + 10 grocery, spread over the file) in the catalog format.

    Images are symlinked, so nothing of the shared catalog is copied.
    """
    import csv

    with (catalog_dir / "products.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    fashion = [r for r in rows if r["product_id"].startswith("fashion_")]
    grocery = [r for r in rows if r["product_id"].startswith("grocery_")]
    picked = fashion[:: len(fashion) // 40][:40] + grocery[:: len(grocery) // 10][:10]
    from tests.helpers import write_catalog

    return write_catalog(tmp_path_factory.mktemp("mini_catalog"), catalog_dir, fields, picked)


@pytest.fixture(scope="session")
def ingest_run(
    tmp_path_factory: pytest.TempPathFactory, mini_catalog: Path, tiny_bundle: Path
) -> tuple[Path, str]:
    """The mini catalog ingested by the real CLI into a fresh data dir: (data dir, stdout).

    The run's counters are written to ``<data dir>/ingest.prom`` (``--metrics-file``)."""
    import subprocess

    from tests.helpers import snapshop_cmd

    data_dir = tmp_path_factory.mktemp("data")
    metrics = ["--metrics-file", str(data_dir / "ingest.prom")]
    proc = subprocess.run(
        [*snapshop_cmd(data_dir, tiny_bundle), "ingest", str(mini_catalog), *metrics],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return data_dir, proc.stdout


@pytest.fixture(scope="session")
def ingested_dir(ingest_run: tuple[Path, str]) -> Path:
    return ingest_run[0]


@pytest.fixture(scope="session")
def ingest_output(ingest_run: tuple[Path, str]) -> str:
    return ingest_run[1]


@pytest.fixture(scope="session")
def fake_ingested_dir(
    tmp_path_factory: pytest.TempPathFactory, mini_catalog: Path, fake_encoder: FakeEncoder
) -> Path:
    """The mini catalog ingested in-process with the fake encoder, its run recorded as the CLI
    records one: a data dir for the in-process API tests, in a fraction of the real ingest's
    time. Read-only for tests; copy it (``tests.helpers.copy_data_dir``) to write."""
    from app.settings import Settings
    from app.store import EdgeStore
    from ingestion.pipeline import ingest_catalog
    from ingestion.runs import finish_run, start_run

    settings = Settings(data_dir=tmp_path_factory.mktemp("fake_data"))
    record = start_run(settings.runs_dir, "fake-ingest", mini_catalog)
    store = EdgeStore(settings.store_dir, indexing_threshold_kb=settings.index_threshold_kb)
    try:
        report = ingest_catalog(mini_catalog, store, fake_encoder)
        index = store.index_status().describe()
    finally:
        store.close()
    finish_run(settings.runs_dir, record, report, None, index)
    return settings.data_dir


@pytest.fixture(scope="session")
def mini_queries(tmp_path_factory: pytest.TempPathFactory, mini_catalog: Path) -> Path:
    """A query folder in the dev_queries format over the mini catalog.

    text_queries.csv: 12 queries, each the first three words of a product's title (so several
    products can match, and the legs disagree); image_queries.csv: 8 catalog photos, cropped and
    mirrored so that they are not the catalog's own pixels, as queries (``shop_photo``).
    """
    import csv

    from PIL import Image, ImageOps

    with (mini_catalog / "products.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    root = tmp_path_factory.mktemp("mini_queries")
    (root / "images").mkdir()
    with (root / "text_queries.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query_id", "query", "relevant_product_ids", "match_rule"])
        for i, r in enumerate(rows[::4][:12]):
            words = " ".join(r["title"].split()[:3])
            writer.writerow([f"t{i:02d}", words, r["product_id"], "title"])
    with (root / "image_queries.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["query_id", "query_image", "query_type", "relevant_product_ids", "relevant_category"]
        )
        for i, r in enumerate(rows[1::6][:8]):
            name = r["image_files"].split(";")[0]
            with Image.open(mini_catalog / "images" / name) as im:
                w, h = im.size
                shot = ImageOps.mirror(im.convert("RGB").crop((w // 8, h // 8, w, h)))
                shot.save(root / "images" / f"q{i}.jpg", quality=85)
            writer.writerow(
                [f"i{i:02d}", f"images/q{i}.jpg", "shop_photo", r["product_id"], r["category"]]
            )
    return root
