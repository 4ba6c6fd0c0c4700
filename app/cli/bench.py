"""``snapshop bench``: the whole benchmark (sizes, clients, naive stack, recall, memory) as one
results file, the README table made from the results files, and the single ``ingest`` and
``search`` benchmarks; each measurement with its baseline from the same run."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import err, fail, friendly_errors, progress_bar, settings

app = typer.Typer(
    invoke_without_command=True,
    help="Benchmarks (JSON out), each with a baseline. Without a subcommand: the whole "
    "benchmark (see --sizes).",
)


@app.callback()
def bench_all(
    ctx: typer.Context,
    sizes: Annotated[
        str,
        typer.Option(
            help="Store sizes in points, comma-separated (3k, 100k, 1m; 'catalog' = the data "
            "dir's catalog as ingested). Sizes up to the catalog's own are the catalog itself; "
            "larger ones add synthetic points shaped like it. Default 3k,100k: 1m takes hours "
            "on 2 cores, so it is asked for by name."
        ),
    ] = "3k,100k",
    device: Annotated[
        str | None, typer.Option(help="cpu | cuda (default: the global --device, else cpu).")
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="The catalog size only, 1 and 8 clients, few queries (CI: < 3 min)."
        ),
    ] = False,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Results file (default bench/results/<date>-<machine>.json)."),
    ] = None,
    queries: Annotated[
        Path | None,
        typer.Option(help="Query files folder (default: dev_queries/ beside the last catalog)."),
    ] = None,
    catalog: Annotated[
        Path | None,
        typer.Option(help="Catalog for the ingest timing (default: the last one ingested)."),
    ] = None,
    machine: Annotated[
        str | None, typer.Option(help="Machine name in the results (default <host>-<cpus>cpu).")
    ] = None,
    naive_max_points: Annotated[
        int, typer.Option(min=0, help="Run the naive stack at sizes up to this many points.")
    ] = 100_000,
    float_max_points: Annotated[
        int,
        typer.Option(
            min=0,
            help="Build and serve the float store at sizes up to this many points; above, only "
            "the int8 store (which then gets every measurement). A float 1M store takes hours "
            "to index on 2 cores and int8 is what 1M serves from.",
        ),
    ] = 100_000,
) -> None:
    """The whole benchmark in one run; sized stores are cached under <data-dir>/bench/."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.progress import TaskID

    from app.benchmarks.queries import BenchSetupError
    from app.benchmarks.report import machine_label, results_path
    from app.benchmarks.run import BenchOptions, parse_sizes, run_bench
    from app.evaluation.queries import QueryFileError

    cfg = settings()
    chosen = device or ("cpu" if cfg.device == "auto" else cfg.device)
    if chosen not in ("cpu", "cuda"):
        fail(f"--device takes cpu or cuda, not {chosen!r}")
    try:
        parsed = [("catalog", None)] if quick else parse_sizes(sizes)
    except ValueError as exc:
        fail(f"--sizes: {exc}")
    options = BenchOptions(
        sizes=tuple(parsed),
        quick=quick,
        device=chosen,
        queries_dir=queries,
        catalog_dir=catalog,
        machine=machine,
        naive_max_points=naive_max_points,
        float_max_points=float_max_points,
    )
    out = json_out or results_path(machine_label(machine))
    cfg = cfg.model_copy(update={"device": chosen})
    with friendly_errors(), progress_bar("note") as progress:
        tasks: dict[str, TaskID] = {}

        def advance(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total, note="")
            progress.update(tasks[step], completed=done, total=total)

        def say(message: str) -> None:
            progress.console.print(message, highlight=False)

        try:
            result = run_bench(cfg, options, advance, say)
        except (BenchSetupError, QueryFileError) as exc:
            fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    err.print(f"results: {out} ({result['seconds']:.0f} s)")
    if result["errors"]:
        for error in result["errors"]:
            err.print(f"[bold red]error:[/] {error['step']}: {error['error']}", highlight=False)
        raise typer.Exit(1)


@app.command("table")
def bench_table_cmd(
    results: Annotated[Path, typer.Argument(help="Folder of results files.")] = Path(
        "bench/results"
    ),
    readme: Annotated[Path, typer.Option(help="README whose table part is rewritten.")] = Path(
        "bench/README.md"
    ),
) -> None:
    """Rewrite the generated tables in bench/README.md from every results file."""
    from app.benchmarks.report import update_readme

    if not results.is_dir():
        fail(f"{results}: no such folder")
    try:
        update_readme(readme, results)
    except ValueError as exc:
        fail(str(exc))
    err.print(f"updated {readme}")


def _emit(result: object, out: Path | None) -> None:
    text = json.dumps(result, indent=2)
    if out is not None:
        out.write_text(text + "\n")
    print(text)


@app.command("ingest")
def bench_ingest_cmd(
    catalog_dir: Annotated[Path, typer.Argument(help="Catalog folder (products.csv + images).")],
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N products (default: all).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Pipeline batch size.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Pipeline decode threads.")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON to this file.")] = None,
) -> None:
    """Ingest images/s: the pipeline vs a naive one-image-at-a-time loop, in the same run."""
    from app.benchmarks.ingest import bench_ingest
    from app.components import load_encoder, scratch_stores

    cfg = settings()
    with friendly_errors():
        encoder = load_encoder(cfg)
        result = bench_ingest(
            catalog_dir,
            encoder,
            limit,
            batch_size=batch_size or cfg.batch_size,
            workers=workers,
            open_scratch=scratch_stores(cfg),
            pipeline_encoder=load_encoder(cfg, parallel_towers=True),
        )
    _emit(result, out)


@app.command("search")
def bench_search_cmd(
    queries_dir: Annotated[
        Path, typer.Argument(help="Folder with text_queries.csv and image_queries.csv.")
    ],
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent clients.")] = 8,
    rounds: Annotated[int, typer.Option(min=1, help="Runs of each mode, alternating.")] = 2,
    limit: Annotated[int, typer.Option(min=1, help="Queries per round (text + photo).")] = 120,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON to this file.")] = None,
) -> None:
    """Search latency under load, micro-batching on vs off, against the ingested store."""
    from app.benchmarks.search import bench_search
    from app.components import build_service, open_components
    from app.evaluation.queries import read_image_queries, read_text_queries
    from app.search.query import SearchQuery

    cfg = settings()
    with friendly_errors():
        texts = read_text_queries(queries_dir / "text_queries.csv")
        photos = read_image_queries(queries_dir / "image_queries.csv")
        mixed: list[SearchQuery] = []
        for i in range(limit):
            if i % 2 == 0:
                mixed.append(SearchQuery(text=texts[(i // 2) % len(texts)].text))
            else:
                mixed.append(SearchQuery(image=photos[(i // 2) % len(photos)].image.read_bytes()))
        # Both modes share one encoder, store and profiles, so only the batching differs.
        with (
            open_components(cfg, micro_batch=False) as parts,
            closing(
                build_service(cfg, parts.store, parts.encoder, parts.profiles, micro_batch=True)
            ) as batched,
        ):
            result = bench_search(parts.service, batched, mixed, concurrency, rounds)
    _emit(result, out)
