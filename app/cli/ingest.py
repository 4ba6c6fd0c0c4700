"""``snapshop ingest`` (sync the store with a catalog) and ``snapshop status`` (what it holds)."""

from __future__ import annotations

from contextlib import closing, suppress
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import err, fail, friendly_errors, progress_bar, settings


def print_outcome(result: dict[str, Any]) -> None:
    """A run's summary, as a local run and a run handed to the server both print it."""
    counts = result["counts"]
    for reject in result["rejects"]:
        err.print(
            f"[yellow]rejected[/] {reject['source']} ({reject['product_id']}): {reject['reason']}"
        )
    if counts["rejected"] > len(result["rejects"]):
        err.print(f"[yellow]… and {counts['rejected'] - len(result['rejects'])} more rejects[/]")
    if result["quarantine"] is not None:
        err.print(
            f"[yellow]warning:[/] {counts['rejected']} rejected, listed in {result['quarantine']}",
            soft_wrap=True,
        )
    err.print(result["changes"], soft_wrap=True)
    err.print(
        f"{result['seconds']:.1f}s, {result['images_per_s']:.1f} images/s embedded, "
        f"index: {result['index']}"
    )
    print(result["summary"])


def _write_metrics(path: Path | None, outcome: str, counts: dict[str, int] | None) -> None:
    if path is None:
        return
    from app.observability.metrics import write_ingest_textfile

    try:
        write_ingest_textfile(str(path), outcome, counts)
    except OSError as exc:
        fail(f"cannot write the metrics file {path}: {exc}")


def ingest(
    catalog_dir: Annotated[
        Path,
        typer.Argument(help="Folder with products.csv or products.jsonl, and the images."),
    ],
    batch_size: Annotated[int | None, typer.Option(help="Images per inference batch.")] = None,
    build_index: Annotated[bool, typer.Option(help="Build the HNSW index at the end.")] = True,
    replace_model: Annotated[
        bool,
        typer.Option(help="If the store holds another model's vectors, drop them and re-embed."),
    ] = False,
    prune: Annotated[
        bool, typer.Option(help="Delete products that are no longer in products.csv.")
    ] = False,
    strict: Annotated[
        bool, typer.Option(help="Exit with status 1 when anything was rejected.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Decode/preprocess threads (default: one per CPU)."),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            help="Write the run's counters here in the Prometheus text format (for "
            "node_exporter's textfile collector; name it *.prom)."
        ),
    ] = None,
) -> None:
    """Sync the store with a catalog: embed new or changed images, keep the rest.

    When a running `snapshop serve` holds the data dir, the sync runs in that server (which
    keeps answering searches) and this command follows it.
    """
    from app.api.announce import read_server_file
    from app.components import load_encoder, open_store
    from ingestion.pipeline import ingest_catalog
    from ingestion.quarantine import run_id, write_quarantine
    from ingestion.runs import fail_run, finish_run, start_run
    from ingestion.sync import SyncOptions, SyncOutcome

    cfg = settings()
    server = read_server_file(cfg.data_dir)
    if server is not None:
        from app.cli.handoff import hand_off

        if not catalog_dir.is_dir():
            fail(f"catalog folder not found: {catalog_dir}")
        options = SyncOptions(
            prune=prune,
            replace_model=replace_model,
            build_index=build_index,
            batch_size=batch_size,
            workers=workers,
        )
        result = hand_off(server, cfg, catalog_dir, options)
        _write_metrics(metrics_file, "done", result["counts"])
        print_outcome(result)
        if strict and result["counts"]["rejected"]:
            raise typer.Exit(1)
        return

    run = run_id()
    record = start_run(cfg.runs_dir, run, catalog_dir)
    try:
        with friendly_errors():
            encoder = load_encoder(cfg)
            # Encoder and store only: a sync needs no search service or profiles.
            with closing(open_store(cfg)) as store:
                with progress_bar("rate") as progress:
                    task = progress.add_task("embedding", total=None, rate="")

                    def advance(n: int, total: int) -> None:
                        progress.update(task, total=total)
                        progress.advance(task, n)
                        speed = progress.tasks[0].speed
                        progress.update(task, rate=f"{speed:.1f} img/s" if speed else "")

                    report = ingest_catalog(
                        catalog_dir,
                        store,
                        encoder,
                        batch_size=batch_size or cfg.batch_size,
                        workers=workers,
                        progress=advance,
                        build_index=build_index,
                        replace_model=replace_model,
                        prune=prune,
                    )
                index = store.index_status().describe()
    except BaseException as exc:  # SystemExit from friendly_errors included: the run failed
        cause = exc.__context__ if isinstance(exc, (SystemExit, typer.Exit)) else exc
        fail_run(cfg.runs_dir, record, cause or exc)
        with suppress(typer.Exit):  # the run's own error is the one to report
            _write_metrics(metrics_file, "failed", None)
        raise
    quarantine = write_quarantine(cfg.data_dir / "quarantine", run, report.rejects)
    finish_run(cfg.runs_dir, record, report, quarantine, index)
    result = SyncOutcome(run, report, quarantine, index).to_json()
    _write_metrics(metrics_file, "done", result["counts"])
    print_outcome(result)
    if strict and report.rejected:
        raise typer.Exit(1)


def status() -> None:
    """What this data dir holds: model bundle, store size, index state."""
    from app.components import open_store
    from app.embedding import BundleError, load_manifest
    from ingestion.runs import list_runs

    cfg = settings()
    print(f"data dir:  {cfg.data_dir.resolve()}")
    try:
        manifest = load_manifest(cfg.model_dir, verify=False)
        print(f"model:     {manifest.model_id} ({cfg.model_dir})")
    except BundleError as exc:
        print(f"model:     none ({exc})")
    with friendly_errors(), closing(open_store(cfg)) as store:
        info = store.info()
        index = store.index_status()
    print(f"store:     {info.backend}, {info.points} points, model {info.model_id or '-'}")
    print(f"index:     {index.describe()}")
    runs = list_runs(cfg.runs_dir, limit=5)
    if not runs:
        print("ingest:    no runs recorded yet")
    for r in runs:
        counts = r.counts
        line = f"ingest:    {r.run} {r.state:<11} {r.catalog}"
        if counts:
            line += (
                f"  +{counts['added']} ~{counts['updated']} -{counts['deleted']}"
                f" ={counts['unchanged']} !{counts['rejected']}"
                f"  {r.images_per_s or 0:.1f} img/s in {r.seconds or 0:.1f}s"
            )
        print(line)
        if r.last_error:
            print(f"           last error: {r.last_error}")
