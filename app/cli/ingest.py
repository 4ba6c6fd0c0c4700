"""``snapshop ingest`` (sync the store with a catalog) and ``snapshop status`` (what it holds)."""

from __future__ import annotations

from contextlib import ExitStack, closing, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import err, fail, friendly_errors, progress_bar, settings

if TYPE_CHECKING:
    from app.store.collections import StoreCollections


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
    new_collection: Annotated[
        bool,
        typer.Option(
            help="Build the collection of --model beside the live one (a model change without "
            "downtime); `snapshop collections swap` makes it live."
        ),
    ] = False,
) -> None:
    """Sync the store with a catalog: embed new or changed images, keep the rest.

    When a running `snapshop serve` holds the data dir, the sync runs in that server (which
    keeps answering searches) and this command follows it.
    """
    from app.api.announce import read_server_file
    from app.components import load_encoder, open_collections, open_store
    from ingestion.pipeline import ingest_catalog
    from ingestion.quarantine import run_id, write_quarantine
    from ingestion.runs import fail_run, finish_run, start_run
    from ingestion.sync import SyncOptions, SyncOutcome

    cfg = settings()
    if new_collection and replace_model:
        fail("--new-collection keeps the live collection as it is: no --replace-model with it")
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
            new_collection=new_collection,
            # the server loads the bundle itself: the one this command was given
            model=str(cfg.model_dir.resolve()) if new_collection else None,
        )
        job = hand_off(server, cfg, catalog_dir, options)
        result = job["result"]
        _write_metrics(metrics_file, "done", result["counts"])
        print_outcome(result)
        if new_collection:
            _say_built(job["collection"], job["model"])
        if strict and result["counts"]["rejected"]:
            raise typer.Exit(1)
        return

    run = run_id()
    record = start_run(cfg.runs_dir, run, catalog_dir)
    built: str | None = None
    try:
        with friendly_errors(), ExitStack() as stack:
            encoder = load_encoder(cfg, parallel_towers=True)
            # Encoder and store only: a sync needs no search service or profiles.
            if new_collection:
                collections = stack.enter_context(closing(open_collections(cfg)))
                built = _new_collection(collections, encoder.model_id)
                store = stack.enter_context(closing(collections.open(built)))
            else:
                store = stack.enter_context(closing(open_store(cfg)))
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
                    bundle=cfg.model_dir,
                    # The engine holds the GIL while it builds, so the bar is frozen then:
                    # lines on stderr say it is alive.
                    indexing=progress.console.file,
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
    if built is not None:
        _say_built(built, encoder.model_id)
    if strict and report.rejected:
        raise typer.Exit(1)


def _new_collection(collections: StoreCollections, model_id: str) -> str:
    """The name of ``model_id``'s collection beside the live one; refused for the live model."""
    live = collections.live()
    meta = collections.meta(live) if live is not None else None
    if meta is not None and meta.get("model_id") == model_id:
        fail(
            f"the live collection {live} already holds model {model_id}: sync it without "
            "--new-collection (or point --model / SNAPSHOP_MODEL at the new bundle)"
        )
    return collections.collection_for(model_id)


def _say_built(name: str, model_id: str) -> None:
    err.print(
        f"collection {name} (model {model_id}) is built beside the live one; make it live "
        f"with `snapshop collections swap {name}`",
        soft_wrap=True,
    )


def status() -> None:
    """What this data dir holds: model bundle, the store's collections, index state, runs."""
    from app.cli.collections import print_collections
    from app.components import open_collections
    from app.embedding import BundleError, load_manifest
    from ingestion.runs import list_runs

    cfg = settings()
    print(f"data dir:  {cfg.data_dir.resolve()}")
    try:
        manifest = load_manifest(cfg.model_dir, verify=False)
        print(f"model:     {manifest.model_id} ({cfg.model_dir})")
    except BundleError as exc:
        print(f"model:     none ({exc})")
    with friendly_errors(), closing(open_collections(cfg)) as collections:
        with closing(collections.open()) as store:
            info = store.info()
            index = store.index_status()
        rows = collections.list()
    live = next((c.name for c in rows if c.live), "-")
    print(
        f"store:     {info.backend}, {info.points} points, model {info.model_id or '-'}, "
        f"collection {live}"
    )
    print(f"index:     {index.describe()}")
    graph = info.extra.get("hnsw")
    if graph:
        print(
            f"hnsw:      m {graph['m']}, ef_construct {graph['ef_construct']}, exact below "
            f"{graph.get('full_scan_kb', 10_000)} KB matched, "
            f"search beam {graph['ef']}"
        )
    print_collections(rows, indent="           ", title="collections:")
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
