"""Rejects land in <data-dir>/quarantine/<run>.jsonl; the good rows are ingested; --strict fails."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helpers import snapshop_cmd
from tests.ingestion.test_pipeline import _catalog


def _ingest(
    data_dir: Path, bundle: Path, catalog: Path, *flags: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*snapshop_cmd(data_dir, bundle), "ingest", *flags, str(catalog)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rejects_are_quarantined_with_reasons(tmp_path: Path, tiny_bundle: Path) -> None:
    catalog = _catalog(tmp_path / "cat")
    data_dir = tmp_path / "data"
    done = _ingest(data_dir, tiny_bundle, catalog)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "ingested 3 products, 4 images, 4 rejected"
    (report,) = (data_dir / "quarantine").glob("*.jsonl")
    assert report.name in done.stderr.replace("\n", "")
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert {(r["product_id"], r["reason"].split(":")[0]) for r in rows} == {
        ("", "missing product_id"),
        ("broken", "unreadable image"),
        ("gone", "image file not found"),
        ("green", "image file not found"),
    }
    assert all(r["run"] == report.stem and r["source"] for r in rows)
    # The row without an id is named by file and line, so a person can find it.
    assert any(r["source"].endswith("products.csv:7") for r in rows)


def test_strict_fails_the_run_but_keeps_the_good_rows(tmp_path: Path, tiny_bundle: Path) -> None:
    catalog = _catalog(tmp_path / "cat")
    done = _ingest(tmp_path / "data", tiny_bundle, catalog, "--strict")
    assert done.returncode == 1
    assert "ingested 3 products, 4 images, 4 rejected" in done.stdout
