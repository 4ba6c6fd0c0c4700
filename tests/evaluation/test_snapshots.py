"""The generated phone-snapshot query set: deterministic, readable, distorted but recognisable."""

from __future__ import annotations

import ast
import csv
import hashlib
import random
import subprocess
import sys
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.evaluation import snapshots
from app.evaluation.queries import read_image_queries
from app.evaluation.snapshots import (
    SnapshotError,
    SnapshotParams,
    distort,
    sample_products,
    write_snapshot_set,
)
from ingestion.catalog import read_catalog

DEV_COLUMNS = ["query_id", "query_image", "query_type", "relevant_product_ids", "relevant_category"]


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def snapshot_set(tmp_path_factory: pytest.TempPathFactory, mini_catalog: Path) -> Path:
    out = tmp_path_factory.mktemp("snapshots")
    write_snapshot_set(mini_catalog, out, n=12, seed=5)
    return out


def test_same_seed_same_bytes(tmp_path: Path, mini_catalog: Path, snapshot_set: Path) -> None:
    write_snapshot_set(mini_catalog, tmp_path, n=12, seed=5)
    assert _digests(tmp_path) == _digests(snapshot_set)
    other = tmp_path / "other"
    write_snapshot_set(mini_catalog, other, n=12, seed=6)
    assert _digests(other) != _digests(snapshot_set)


def test_csv_is_dev_queries_format(snapshot_set: Path, catalog_dir: Path) -> None:
    with (catalog_dir / "dev_queries" / "image_queries.csv").open(newline="") as fh:
        assert next(csv.reader(fh)) == DEV_COLUMNS  # the shared format has not moved
    with (snapshot_set / "image_queries.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
        assert list(rows[0]) == DEV_COLUMNS
    queries = read_image_queries(snapshot_set / "image_queries.csv")
    assert len(queries) == 12
    assert {q.query_type for q in queries} == {"synthetic_phone_snapshot"}
    for row, q in zip(rows, queries, strict=True):
        assert row["query_image"] == f"images/{row['query_id']}.jpg"
        assert len(q.relevant) == 1 and q.category
        with Image.open(q.image) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            assert img.size == snapshots.FRAME


def test_samples_fashion_evenly_one_image_each(snapshot_set: Path, mini_catalog: Path) -> None:
    catalog = read_catalog(mini_catalog)
    order = {p.product_id: i for i, p in enumerate(catalog.products)}
    queries = read_image_queries(snapshot_set / "image_queries.csv")
    ids = [min(q.relevant) for q in queries]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("fashion_") for i in ids)  # grocery left out by default
    positions = [order[i] for i in ids]
    assert positions == sorted(positions)
    fashion = sum(1 for p in catalog.products if not p.category.startswith("Grocery"))
    # One per slice of ~fashion/12 products: never two in the same slice's neighbourhood.
    assert max(b - a for a, b in pairwise(positions)) < 2 * fashion / 12


def test_sample_is_spread_and_seeded() -> None:
    items = list(range(100))
    picked = sample_products(items, 10, random.Random(1))  # type: ignore[arg-type]
    assert [p // 10 for p in picked] == list(range(10))
    assert picked == sample_products(items, 10, random.Random(1))  # type: ignore[arg-type]
    assert sample_products(items[:3], 10, random.Random(1)) == items[:3]  # type: ignore[arg-type]


def _corr(a: Image.Image, b: Image.Image) -> float:
    def norm(img: Image.Image) -> np.ndarray:
        # Grey levels: the shape and shading that make a product recognisable, whatever the cast.
        arr = np.asarray(img.convert("L").resize((32, 32)), dtype=np.float32)
        return (arr - arr.mean()) / (arr.std() + 1e-6)

    return float((norm(a) * norm(b)).mean())


@pytest.mark.parametrize(
    "step", [snapshots.view_at_angle, snapshots.colour_light, snapshots.camera]
)
def test_each_distortion_changes_but_keeps_the_product(
    step: Callable[[Image.Image, random.Random, SnapshotParams], Image.Image], catalog_dir: Path
) -> None:
    """Loose: each step moves the pixels, yet the result still correlates with the source
    (a different product of the catalog correlates far less; see the last assertion)."""
    paths = sorted((catalog_dir / "images").glob("fashion_*.jpg"))[:8]
    sources = []
    for path in paths:
        with Image.open(path) as img:
            sources.append(img.convert("RGB"))
    for seed, src in enumerate(sources):
        out = step(src, random.Random(seed), SnapshotParams())
        assert out.size == src.size and out.mode == "RGB"
        assert out.tobytes() != src.tobytes()
        own = _corr(out, src)
        assert own > 0.5, (step.__name__, seed, own)
        others = [_corr(out, o) for o in sources if o is not src]
        assert own > float(np.median(others)), (step.__name__, seed)


def test_snapshots_differ_from_source_and_show_the_product(
    snapshot_set: Path, mini_catalog: Path
) -> None:
    """Every query differs from its catalog image; the product keeps a large part of the frame."""
    catalog = read_catalog(mini_catalog)
    by_id = {p.product_id: p for p in catalog.products}
    for q in read_image_queries(snapshot_set / "image_queries.csv"):
        product = by_id[min(q.relevant)]
        with Image.open(catalog.image_path(product.image_files[0])) as img:
            src = img.convert("RGB")
        with Image.open(q.image) as shot:
            assert shot.size != src.size or shot.convert("RGB").tobytes() != src.tobytes()
    src = Image.new("RGB", (127, 170), (255, 0, 0))
    for seed in range(10):
        placed = snapshots.place_on_surface(src, random.Random(seed), SnapshotParams())
        red = np.all(np.asarray(placed) == (255, 0, 0), axis=-1).mean()
        assert red > 0.12, (seed, red)  # >= 0.5^2 * (127/170) * (384/512) of the frame


def test_distortion_code_is_separate_from_training() -> None:
    """The evaluation never grades the training augmentations: no import of them."""
    tree = ast.parse(Path(snapshots.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not any(m.startswith("app.embedding") for m in imported), imported


def test_distort_is_deterministic(catalog_dir: Path) -> None:
    path = sorted((catalog_dir / "images").glob("fashion_*.jpg"))[3]
    with Image.open(path) as img:
        src = img.convert("RGB")
    a, b = distort(src, random.Random(2)), distort(src, random.Random(2))
    assert a.tobytes() == b.tobytes() and a.mode == "RGB" and a.size == snapshots.FRAME


def test_refuses_to_overwrite_and_names_bad_rows(tmp_path: Path, mini_catalog: Path) -> None:
    out = tmp_path / "set"
    write_snapshot_set(mini_catalog, out, n=3, seed=0)
    with pytest.raises(SnapshotError, match="--overwrite"):
        write_snapshot_set(mini_catalog, out, n=3, seed=0)
    write_snapshot_set(mini_catalog, out, n=2, seed=0, overwrite=True)
    assert len(list((out / "images").glob("*.jpg"))) == 2  # no stale photos left behind

    broken = tmp_path / "broken"
    (broken / "images").mkdir(parents=True)
    (broken / "products.csv").write_text(
        "product_id,title,category,image_files\nfashion_1,Blue Shirt,Apparel/Topwear,gone.jpg\n"
    )
    with pytest.raises(SnapshotError, match=r"products\.csv:2 .*gone\.jpg"):
        write_snapshot_set(broken, tmp_path / "x", n=1)


def test_cli_end_to_end(tmp_path: Path, mini_catalog: Path, snapshot_set: Path) -> None:
    cmd = [sys.executable, "-m", "app.cli", "--data-dir", str(tmp_path / "data"), "queries"]
    out = tmp_path / "cli"
    args = ["snapshots", "--catalog", str(mini_catalog), "--out", str(out), "--n", "12"]
    proc = subprocess.run([*cmd, *args, "--seed", "5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 12 snapshot queries" in proc.stdout
    assert _digests(out) == _digests(snapshot_set)  # the CLI and the function agree

    again = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "--overwrite" in again.stderr

    missing = subprocess.run(
        [*cmd, "snapshots", "--catalog", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0 and "products.csv" in missing.stderr
