"""`snapshop bench --quick` end to end on the fixture catalog and the tiny model: the real server
in its own process, the naive stack, recall, int8. It must finish without errors and report
every part with sane numbers; no timing is asserted (CI machines differ)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers import copy_data_dir, snapshop_cmd

MODES = ("typed", "photo", "photo_text")


def _positive(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and v > 0 for v in values)


def _check_recall(recall: dict[str, Any], legs: set[str]) -> None:
    assert set(recall["legs"]) == legs
    for leg in recall["legs"].values():
        for kind in ("unfiltered", "filtered"):
            assert leg[kind]["queries"] > 0
            assert 0 <= leg[kind]["lowest"] <= leg[kind]["recall_at_10"] <= 1
            assert _positive(leg[kind]["ann_ms_p50"], leg[kind]["exact_ms_p50"])
            worst = leg[kind]["worst"]
            assert 0 <= worst["recall_at_10_of_100"] <= leg[kind]["recall_at_10_of_100"]
            assert worst["query"] >= 0 and (worst["category"] is None) == (kind == "unfiltered")
    assert 0 <= recall["min_recall_at_10"] <= 1


def _check_server(part: dict[str, Any], clients: list[str], per_cell: dict[str, int]) -> None:
    for moment in ("idle", "after"):
        memory = part["server"][moment]
        assert _positive(memory["rss_mb"], memory["anon_mb"])
        assert memory["peak_rss_mb"] >= memory["rss_mb"]
    for mode in MODES:
        assert set(part["http"][mode]) == set(clients)
        for n in clients:
            cell = part["http"][mode][n]
            assert cell["errors"] == 0 and cell["requests"] == per_cell[n]
            assert _positive(cell["p50_ms"], cell["qps"])
            assert cell["p50_ms"] <= cell["p95_ms"] <= cell["p99_ms"]


def test_bench_quick_measures_every_part_without_errors(
    tmp_path: Path, ingested_dir: Path, tiny_bundle: Path, mini_queries: Path
) -> None:
    data = copy_data_dir(ingested_dir, tmp_path / "data")
    out = tmp_path / "results" / "run.json"
    # A 1 KB indexing threshold: even the 50-point fixture gets an HNSW index and int8 codes,
    # so recall and quantisation are measured on real indexes, not on exact search.
    env = {**os.environ, "SNAPSHOP_INDEX_THRESHOLD_KB": "1"}
    cmd = [*snapshop_cmd(data, tiny_bundle), "bench", "--quick", "--queries", str(mini_queries)]
    proc = subprocess.run(
        [*cmd, "--machine", "ci box", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["errors"] == []
    assert result["machine"]["label"] == "ci-box" and result["machine"]["cpus"] > 0
    assert result["options"]["quick"] is True and result["options"]["sizes"] == ["catalog"]
    per_cell = result["options"]["requests_per_cell"]
    assert result["options"]["clients"] == [1, 8]

    encoder = result["encoder"]
    assert _positive(*encoder["image_ms_per_image"].values(), *encoder["text_ms_per_text"].values())
    roof = encoder["roofline"]
    assert _positive(
        roof["model_gflops_per_image"], roof["matmul_gflops"], roof["percent_of_matmul"]
    )
    # The naive stack's torch model is the bundle's own model: same vectors as ONNX.
    naive_encoder = result["naive_encoder"]
    assert _positive(*naive_encoder["image_ms_per_image"].values())
    assert min(naive_encoder["parity_min_cosine"].values()) > 0.999
    # The ingest timing found the catalog from the data dir's last ingest run.
    assert result["ingest"]["images"] == 16
    assert _positive(
        result["ingest"]["snapshop"]["images_per_s"], result["ingest"]["baseline"]["images_per_s"]
    )

    (size,) = result["sizes"]
    assert (size["label"], size["points"], size["synthetic"]) == ("catalog", 50, 0)
    assert size["store"]["index_state"] == "ready" and size["store"]["disk_mb"] > 0
    dense_legs = {"text_image", "text_text", "image", "image_text"}  # tiny model: no instance
    _check_recall(size["recall"], dense_legs)
    assert size["recall"]["top1_score_gap_max"] < 1e-4  # float vectors: ANN scores are exact
    _check_server(size, ["1", "8"], per_cell)

    naive = size["naive"]
    assert naive["setup_s"] >= 0
    for mode in MODES:
        paired = naive["modes"][mode]
        assert paired["naive"]["requests"] == paired["server"]["requests"] > 0
        assert _positive(paired["naive"]["p50_ms"], paired["server"]["p50_ms"])
        ratio = paired["naive"]["p50_ms"] / paired["server"]["p50_ms"]
        assert abs(paired["speedup_p50"] - ratio) < 0.02
        assert 0 <= paired["top10_overlap_with_server"] <= 1
    # Photos: same model, same exact vectors on both sides, so the same products come back.
    assert naive["modes"]["photo"]["top10_overlap_with_server"] > 0.7

    int8 = size["int8"]
    assert int8["store"]["index_state"] == "ready"
    _check_recall(int8["recall_rescored"], dense_legs)
    _check_recall(int8["recall_codes_only"], dense_legs)
    # Without rescoring the engine returns the int8 codes' scores: proof they were searched.
    assert int8["recall_codes_only"]["top1_score_gap_max"] > 1e-5
    assert int8["recall_rescored"]["top1_score_gap_max"] < 1e-4
    assert "http" not in int8  # --quick starts the server once (the full run serves int8 too)

    assert result["goals"] and all(g["met"] in (True, False, None) for g in result["goals"])

    # The README table is made from the results folder, by the CLI.
    readme = tmp_path / "README.md"
    shutil.copy(out, tmp_path / "results" / "2026-01-01-ci-box.json")
    out.unlink()
    table_cmd = ["bench", "table", str(tmp_path / "results"), "--readme", str(readme)]
    table = subprocess.run(
        [*snapshop_cmd(data, tiny_bundle), *table_cmd],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0, table.stderr
    assert "| 2026-01-01-ci-box | catalog | 50 |" in readme.read_text()


def test_bench_without_query_files_says_what_to_give(tmp_path: Path, tiny_bundle: Path) -> None:
    proc = subprocess.run(
        [*snapshop_cmd(tmp_path / "data", tiny_bundle), "bench", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "give --queries DIR" in proc.stderr
    bad = subprocess.run(
        [*snapshop_cmd(tmp_path / "data", tiny_bundle), "bench", "--sizes", "3k,lots"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--sizes: size 'lots'" in bad.stderr
