"""The issue's sync scenario through the real CLI: edit a copy of a catalog and re-ingest it."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np

from app.embedding import Encoder
from app.store import TEXT_VECTOR, EdgeStore
from ingestion.runs import list_runs
from tests.helpers import snapshop_cmd


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _write(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _ingest(data_dir: Path, bundle: Path, catalog: Path, *extra: str) -> str:
    proc = subprocess.run(
        [*snapshop_cmd(data_dir, bundle), "ingest", str(catalog), *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr + proc.stdout


def test_ten_titles_changed_five_deleted_five_added(
    tmp_path: Path, mini_catalog: Path, catalog_dir: Path, tiny_bundle: Path
) -> None:
    copy = tmp_path / "catalog"
    (copy / "images").mkdir(parents=True)
    fields, rows = _read(mini_catalog / "products.csv")
    for row in rows:
        name = row["image_files"]
        (copy / "images" / name).symlink_to(catalog_dir / "images" / name)
    _write(copy / "products.csv", fields, rows)
    data_dir = tmp_path / "data"
    first = _ingest(data_dir, tiny_bundle, copy)
    assert "added 50, updated 0, deleted 0, unchanged 0" in first
    again = _ingest(data_dir, tiny_bundle, copy)
    assert "embedded 0 images, wrote 0 points" in again

    for i, row in enumerate(rows[:10]):
        row["title"] = f"renamed quokkaware item{i}"
    deleted = rows[10:15]
    del rows[10:15]
    _, everything = _read(catalog_dir / "products.csv")
    taken = {r["product_id"] for r in rows} | {r["product_id"] for r in deleted}
    added = [r for r in everything if r["product_id"] not in taken][:5]
    for row in added:
        row["title"] = f"{row['title']} wombatique"
        name = row["image_files"]
        (copy / "images" / name).symlink_to(catalog_dir / "images" / name)
    rows += added
    _write(copy / "products.csv", fields, rows)

    out = _ingest(data_dir, tiny_bundle, copy, "--prune")
    assert "added 5, updated 10, deleted 5, unchanged 35 products" in out
    assert "embedded 15 images, wrote 20 points" in out

    store = EdgeStore(data_dir / "qdrant")
    try:
        assert store.count() == len(rows) == 50
        found = {h.payload["product_id"] for h in store.search_bm25("wombatique", 20)}
        assert found == {r["product_id"] for r in added}
        assert {h.payload["product_id"] for h in store.search_bm25("quokkaware", 20)} == {
            r["product_id"] for r in rows[:10]
        }
        for gone in deleted:
            title_hits = store.search_bm25(gone["title"], 50)
            assert gone["product_id"] not in {h.payload["product_id"] for h in title_hits}
        # The text embedding changed with the title, in the same write.
        encoder = Encoder(tiny_bundle, device="cpu")
        (vec,) = encoder.encode_texts(
            [" ".join([rows[3]["title"], rows[3]["category"].replace("/", " ")])]
        )
        best = store.search_dense(np.asarray(vec), 1, using=TEXT_VECTOR)[0]
        assert best.payload["product_id"] == rows[3]["product_id"]
    finally:
        store.close()

    runs = list_runs(data_dir / "runs")
    assert [r.state for r in runs] == ["ok", "ok", "ok"]
    assert runs[0].counts["updated"] == 10 and runs[0].counts["deleted"] == 5
    assert runs[0].images_per_s is not None and runs[0].images_per_s > 0
    status = subprocess.run(
        [*snapshop_cmd(data_dir, tiny_bundle), "status"], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stderr
    assert "exact search (50 points" in status.stdout
    graph = "m 32, ef_construct 256, exact below 100000 KB matched, search beam"
    assert f"hnsw:      {graph} 384" in status.stdout
    assert f"{runs[0].run} ok" in status.stdout and "+5 ~10 -5 =35 !0" in status.stdout
    assert json.loads((data_dir / "runs" / f"{runs[0].run}.json").read_text())["state"] == "ok"
