"""SIGKILL an ingest at random moments, run it again, and check the store equals the catalog."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from app.embedding import Encoder, load_image
from app.store import point_id
from ingestion.catalog import read_catalog
from ingestion.documents import product_text
from ingestion.pipeline import product_hash
from tests.helpers import snapshop_cmd


def _catalog(root: Path, source: Path, n: int) -> Path:
    """The first ``n`` products of the dev catalog (images symlinked), a copy we may edit."""
    with (source / "products.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)[:n]
    (root / "images").mkdir(parents=True)
    for row in rows:
        for name in row["image_files"].split(";"):
            (root / "images" / name).symlink_to(source / "images" / name)
    _write(root, fields, rows)
    return root


def _write(root: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    with (root / "products.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _run_and_kill(cmd: list[str], delay: float) -> bool:
    """Start ``cmd``, SIGKILL it after ``delay`` s; True if it was still running then."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    alive = proc.poll() is None
    if alive:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return alive


def _check_store_equals_catalog(data_dir: Path, catalog_dir: Path, bundle: Path) -> None:
    catalog = read_catalog(catalog_dir)
    expected = {
        point_id(p.product_id, f): (p, f, product_hash(p, catalog))
        for p in catalog.products
        for f in p.image_files
    }
    shard = qe.EdgeShard.load(str(data_dir / "qdrant" / "shard"))
    try:
        records, offset = [], None
        while True:
            page, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=500, with_payload=True)
            )
            records += page
            if offset is None:
                break
        got = {str(r.id): r.payload for r in records}
        assert set(got) == set(expected)  # no duplicates, nothing missing, nothing extra
        for pid, (product, name, digest) in expected.items():
            payload = got[pid]
            assert payload["product_id"] == product.product_id
            assert payload["title"] == product.title
            assert payload["image_file"] == name
            assert payload["content_hash"] == digest
        # Vectors match what the model makes of each image (a sample keeps the test quick).
        sample = random.Random(0).sample(sorted(expected), 40)
        stored = shard.retrieve(sample, with_payload=False, with_vector=True)
        encoder = Encoder(bundle, device="cpu")
        images = [load_image(catalog.image_path(expected[str(r.id)][1])) for r in stored]
        fresh = encoder.encode_images(images)
        texts = encoder.encode_texts([product_text(expected[str(r.id)][0]) for r in stored])
        for record, vec, text_vec in zip(stored, fresh, texts, strict=True):
            v = np.asarray(record.vector["image"], dtype=np.float32)
            assert float(v @ vec / np.linalg.norm(v)) > 0.9999
            # The text vector follows the (possibly edited) title of the same product.
            t = np.asarray(record.vector["text"], dtype=np.float32)
            assert float(t @ text_vec / np.linalg.norm(t)) > 0.9999
    finally:
        shard.close()


def test_sigkill_at_random_moments_then_rerun_converges(
    tmp_path: Path, catalog_dir: Path, tiny_bundle: Path
) -> None:
    catalog = _catalog(tmp_path / "cat", catalog_dir, 3000)
    args = ["ingest", "--batch-size", "8", str(catalog)]
    # How long an uninterrupted run takes here (start-up included), so the kills land inside.
    started = time.perf_counter()
    subprocess.run([*snapshop_cmd(tmp_path / "scratch", tiny_bundle), *args], check=True)
    full = time.perf_counter() - started

    data_dir = tmp_path / "data"
    cmd = [*snapshop_cmd(data_dir, tiny_bundle), *args]
    rng = random.Random(1234)
    # Each resumed run has less left to do, so the kills come early in the run.
    killed = sum(_run_and_kill(cmd, rng.uniform(0.15, 0.45) * full) for _ in range(6))
    assert killed >= 3, "the ingest finished before most kills: the test proves nothing"

    # Edit the catalog (titles changed, rows deleted) and kill a pruning re-run as well.
    with (catalog / "products.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    for row in rows[::50]:
        row["title"] += " (new season)"
    rows = rows[:-30]  # deleted rows: --prune must remove them
    _write(catalog, fields, rows)
    prune_cmd = [*cmd, "--prune"]
    for _ in range(2):
        _run_and_kill(prune_cmd, rng.uniform(0.15, 0.45) * full)

    done = subprocess.run(prune_cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        f"ingested {len(rows)} products, {len(rows)} images, 0 rejected"
    )
    _check_store_equals_catalog(data_dir, catalog, tiny_bundle)
    again = subprocess.run(prune_cmd, capture_output=True, text=True, timeout=300)
    assert "embedded 0 images, wrote 0 points" in again.stderr
