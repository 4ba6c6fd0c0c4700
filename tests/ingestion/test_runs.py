"""Run records: written at start and end; a killed run shows as interrupted, a failure keeps why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ingestion.catalog import Reject
from ingestion.pipeline import IngestReport
from ingestion.runs import fail_run, finish_run, indexer_health, list_runs, start_run
from tests.helpers import snapshop_cmd


def test_a_run_is_recorded_when_it_starts_and_when_it_ends(tmp_path: Path) -> None:
    record = start_run(tmp_path, "20260101T000000000000Z", tmp_path / "cat")
    (running,) = list_runs(tmp_path)
    assert running.state == "running" and running.ended_at is None  # this process is alive
    report = IngestReport(products=3, images=4, added=3, embedded=4, written=4, seconds=2.0)
    report.rejects.append(Reject("cat/products.csv:5", "p9", "missing title"))
    finish_run(tmp_path, record, report, index="exact search")
    (done,) = list_runs(tmp_path)
    assert done.state == "ok"
    assert done.counts["added"] == 3 and done.counts["rejected"] == 1
    assert done.images_per_s == 2.0 and done.errors == 1
    assert done.last_error == "cat/products.csv:5: missing title"


def test_a_killed_run_is_reported_interrupted(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    record = start_run(tmp_path, "20260101T000000000000Z", tmp_path / "cat")
    path = tmp_path / f"{record.run}.json"
    data = json.loads(path.read_text())
    data["pid"] = int(dead.stdout)  # a process that has exited, as after SIGKILL
    path.write_text(json.dumps(data))
    (run,) = list_runs(tmp_path)
    assert run.state == "interrupted"
    (health,) = indexer_health(tmp_path)
    assert health["healthy"] is False and health["recent_failures"] == 1


def test_a_failed_run_keeps_its_error_and_older_success(tmp_path: Path) -> None:
    ok = start_run(tmp_path, "20260101T000000000000Z", tmp_path / "cat")
    finish_run(tmp_path, ok, IngestReport(seconds=1.0))
    bad = start_run(tmp_path, "20260102T000000000000Z", tmp_path / "cat")
    fail_run(tmp_path, bad, RuntimeError("disk full"))
    (health,) = indexer_health(tmp_path)
    assert health["state"] == "failed" and health["healthy"] is False
    assert health["last_run"]["last_error"] == "RuntimeError: disk full"
    assert health["last_success_at"] == list_runs(tmp_path)[1].ended_at


def test_the_cli_records_a_run_that_fails(tmp_path: Path, tiny_bundle: Path) -> None:
    (tmp_path / "cat").mkdir()
    proc = subprocess.run(
        [*snapshop_cmd(tmp_path / "data", tiny_bundle), "ingest", str(tmp_path / "cat")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no products.csv or products.jsonl" in proc.stderr
    (run,) = list_runs(tmp_path / "data" / "runs")
    assert run.state == "failed"
    assert run.last_error is not None and "no products.csv" in run.last_error
