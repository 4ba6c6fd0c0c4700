"""`snapshop bench ingest` runs both sides over the same images, reports JSON; no timing asserts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helpers import snapshop_cmd


def test_bench_ingest_reports_both_sides_over_the_same_images(
    tmp_path: Path, catalog_dir: Path, tiny_bundle: Path
) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            *snapshop_cmd(tmp_path / "data", tiny_bundle),
            "bench",
            "ingest",
            str(catalog_dir),
            "--limit",
            "12",
            "--batch-size",
            "4",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result == json.loads(proc.stdout)
    assert result["benchmark"] == "ingest" and result["images"] == 12
    for side in ("baseline", "snapshop"):
        assert result[side]["seconds"] > 0 and result[side]["images_per_s"] > 0
    ratio = result["snapshop"]["images_per_s"] / result["baseline"]["images_per_s"]
    assert abs(result["speedup"] - ratio) < 0.02
    assert result["machine"]["provider"] == "CPUExecutionProvider"
    # The pipeline runs as `snapshop ingest` does: both towers at once, on half the threads each
    # (one thread each with a budget of 2), unless the budget is one thread.
    budget = result["machine"]["intra_op_threads"]
    assert result["snapshop"]["towers_in_parallel"] is (budget >= 2)
    assert result["snapshop"]["intra_op_threads_per_tower"] == max(1, budget // 2)
    # The benchmark works in a temporary directory: nothing lands in the data dir.
    assert not (tmp_path / "data" / "qdrant").exists()
