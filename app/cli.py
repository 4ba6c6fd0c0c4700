"""The ``snapshop`` command line: catalog sync, search, serving, evaluation and tuning, models."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from app.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
model_app = typer.Typer(no_args_is_help=True, help="Create and inspect model bundles.")
app.add_typer(model_app, name="model")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (JSON out), each with a baseline.")
app.add_typer(bench_app, name="bench")
judgements_app = typer.Typer(
    no_args_is_help=True, help="People's relevant / not-relevant marks (extra known answers)."
)
app.add_typer(judgements_app, name="judgements")
queryset_app = typer.Typer(
    no_args_is_help=True, help="Stored query sets, for `eval --query-set` and POST /v1/eval/run."
)
app.add_typer(queryset_app, name="queryset")

err = Console(stderr=True)
out = Console()


class _State:
    overrides: dict[str, Any] = {}  # noqa: RUF012 - one process, one CLI invocation


def settings() -> Settings:
    return Settings(**_State.overrides)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn the errors a person can act on into one line instead of a traceback."""
    from app.components import SetupError
    from app.search.service import QueryError
    from app.store import StoreError
    from ingestion.catalog import CatalogError

    try:
        yield
    except (SetupError, StoreError, CatalogError, QueryError, FileNotFoundError) as exc:
        fail(str(exc))


@app.callback()
def main_options(
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (env SNAPSHOP_DATA_DIR; default ./data).")
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Model bundle (env SNAPSHOP_MODEL).")] = None,
    device: Annotated[
        str | None, typer.Option(help="auto | cpu | cuda (env SNAPSHOP_DEVICE).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
) -> None:
    """snapshop: hybrid visual search for shops."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    overrides = {"data_dir": data_dir, "model": model, "device": device}
    _State.overrides = {k: v for k, v in overrides.items() if v is not None}


@app.command()
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
) -> None:
    """Sync the store with a catalog: embed new or changed images, keep the rest."""
    from app.components import load_encoder, open_store
    from ingestion.pipeline import ingest_catalog
    from ingestion.quarantine import run_id, write_quarantine
    from ingestion.runs import fail_run, finish_run, start_run

    cfg = settings()
    run = run_id()
    record = start_run(cfg.runs_dir, run, catalog_dir)
    try:
        with friendly_errors():
            encoder = load_encoder(cfg)
            store = open_store(cfg)
            try:
                with Progress(
                    TextColumn("[progress.description]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"),
                    TimeRemainingColumn(),
                    console=err,
                ) as bar:
                    task = bar.add_task("embedding", total=None, rate="")

                    def advance(n: int, total: int) -> None:
                        bar.update(task, total=total)
                        bar.advance(task, n)
                        speed = bar.tasks[0].speed
                        bar.update(task, rate=f"{speed:.1f} img/s" if speed else "")

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
            finally:
                store.close()
    except BaseException as exc:  # SystemExit from friendly_errors included: the run failed
        cause = exc.__context__ if isinstance(exc, (SystemExit, typer.Exit)) else exc
        fail_run(cfg.runs_dir, record, cause or exc)
        raise
    quarantine = write_quarantine(cfg.data_dir / "quarantine", run, report.rejects)
    finish_run(cfg.runs_dir, record, report, quarantine, index)
    for reject in report.rejects[:20]:
        err.print(f"[yellow]rejected[/] {reject.source} ({reject.product_id}): {reject.reason}")
    if report.rejected > 20:
        err.print(f"[yellow]… and {report.rejected - 20} more rejects[/]")
    if quarantine is not None:
        err.print(
            f"[yellow]warning:[/] {report.rejected} rejected, listed in {quarantine}",
            soft_wrap=True,
        )
    err.print(report.changes(), soft_wrap=True)
    err.print(f"{report.seconds:.1f}s, {report.images_per_s:.1f} images/s embedded, index: {index}")
    print(report.summary())
    if strict and report.rejected:
        raise typer.Exit(1)


def _run_search(query_args: dict[str, Any], image: Path | None) -> dict[str, Any]:
    from app.components import build_service, load_encoder, open_store
    from app.search.schemas import SearchBody, validation_reasons
    from app.search.service import SearchQuery

    cfg = settings()
    with friendly_errors():
        try:
            body = SearchBody.model_validate(query_args)
        except ValidationError as exc:
            fail(validation_reasons(exc, whole="input"))
        data = image.read_bytes() if image is not None else None
        encoder = load_encoder(cfg)
        store = open_store(cfg)
        service = None
        try:
            service = build_service(cfg, store, encoder)
            response = service.search(SearchQuery.from_body(body, data))
        finally:
            if service is not None:
                service.close()
            store.close()
    return response.model_dump()


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"{option} takes NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


@app.command()
def search(
    text: Annotated[str | None, typer.Option("--text", "-t", help="Typed query.")] = None,
    image: Annotated[Path | None, typer.Option("--image", "-i", help="Query photo.")] = None,
    k: Annotated[int, typer.Option(help="Number of results.")] = 10,
    offset: Annotated[int, typer.Option(help="Results to skip.")] = 0,
    category: Annotated[str | None, typer.Option(help="Category path prefix.")] = None,
    price_min: Annotated[float | None, typer.Option(help="Lowest price.")] = None,
    price_max: Annotated[float | None, typer.Option(help="Highest price.")] = None,
    attr: Annotated[
        list[str] | None, typer.Option(help="Attribute equality NAME=VALUE (repeatable).")
    ] = None,
    crop: Annotated[
        str | None, typer.Option(help="Photo box x0,y0,x1,y1 in 0..1 (cut before embedding).")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="Fusion profile name.")] = None,
    explain: Annotated[bool, typer.Option(help="Show each leg's share.")] = False,
    group: Annotated[bool, typer.Option(help="One result per product.")] = True,
    predict_category: Annotated[
        bool | None, typer.Option(help="Restrict image legs to the predicted category.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
) -> None:
    """Search the store by photo, by text, or both (the same service the API runs)."""
    if text is None and image is None:
        fail("give --image PATH, --text TEXT, or both")
    box = None
    if crop is not None:
        parts = crop.split(",")
        try:
            box = dict(zip(("x0", "y0", "x1", "y1"), map(float, parts), strict=True))
        except ValueError:
            fail(f"--crop takes four numbers x0,y0,x1,y1, got {crop!r}")
    query_args: dict[str, Any] = {
        "q": text,
        "k": k,
        "offset": offset,
        "filters": {
            "category": category,
            "price_min": price_min,
            "price_max": price_max,
            "attributes": _pairs(attr or [], "--attr"),
        },
        "crop": box,
        "profile": profile,
        "explain": explain,
        "group_by_product": group,
        "predict_category": predict_category,
    }
    response = _run_search(query_args, image)
    if as_json:
        print(json.dumps(response, indent=2))
        return
    table = Table("#", "product_id", "title", "category", "score", "legs")
    for i, r in enumerate(response["results"], start=offset + 1):
        if explain and r["explain"]:
            legs = " ".join(
                f"{name}:{e['rank']}({e['contribution']:.4f})" for name, e in r["explain"].items()
            )
        else:
            legs = " ".join(f"{name}:{rank}" for name, rank in r["ranks"].items())
        table.add_row(str(i), r["product_id"], r["title"], r["category"], f"{r['score']:.4f}", legs)
    out.print(table)
    timings = ", ".join(f"{k}={v:.1f}" for k, v in response["timings_ms"].items())
    profile_ref = response["profile"]
    err.print(
        f"model {response['model']}; profile {profile_ref['name']}@{profile_ref['version']}; "
        f"ms: {timings}"
    )
    if response.get("predicted_category"):
        pc = response["predicted_category"]
        err.print(
            f"predicted category {pc['path']} ({pc['confidence']:.0%}, "
            f"{'applied' if pc['applied'] else 'not applied'})"
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from app.api.main import create_app

    cfg = settings()
    with friendly_errors():
        from app.components import load_encoder

        # Loaded here so a missing or broken model fails before the port is bound.
        encoder = load_encoder(cfg)
        uvicorn.run(
            create_app(cfg, encoder),
            host=host or cfg.host,
            port=port or cfg.port,
            log_level="info",
        )


@app.command()
def status() -> None:
    """What this data dir holds: model bundle, store size, index state."""
    from app.components import open_store
    from app.embedding import BundleError, load_manifest

    cfg = settings()
    print(f"data dir:  {cfg.data_dir.resolve()}")
    try:
        manifest = load_manifest(cfg.model_dir, verify=False)
        print(f"model:     {manifest.model_id} ({cfg.model_dir})")
    except BundleError as exc:
        print(f"model:     none ({exc})")
    from ingestion.runs import list_runs

    with friendly_errors():
        store = open_store(cfg)
        try:
            info = store.info()
            index = store.index_status()
        finally:
            store.close()
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


@model_app.command("export")
def model_export(
    arch: Annotated[str, typer.Option(help="open_clip architecture, e.g. ViT-B-32.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Bundle directory to write.")],
    pretrained: Annotated[
        str, typer.Option(help="open_clip pretrained tag, or 'none' for random init.")
    ] = "none",
    checkpoint: Annotated[
        Path | None, typer.Option(help="Local open_clip checkpoint file (works offline).")
    ] = None,
    parity_images: Annotated[
        Path | None,
        typer.Option(help="Folder of real images for the parity check (a few are used)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle at --out.")] = False,
) -> None:
    """Export an open_clip model to an ONNX bundle (needs the [train] extra)."""
    try:
        from app.embedding.export import ExportError, export_bundle
    except ImportError as exc:
        fail(f"model export needs torch and open_clip: pip install '.[train]' ({exc})")
    images: list[Path] = []
    if parity_images is not None:
        images = sorted(p for p in parity_images.iterdir() if p.suffix.lower() in _IMAGE_EXTS)[:4]
        if not images:
            fail(f"{parity_images}: no images for the parity check")
    try:
        manifest = export_bundle(
            arch,
            pretrained,
            out_dir,
            checkpoint=checkpoint,
            parity_images=images,
            overwrite=overwrite,
        )
    except ExportError as exc:
        fail(str(exc))
    print(f"wrote {out_dir} ({manifest.model_id}); parity {manifest.parity}")


_IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def _train_progress(bar: Progress, task: Any) -> Callable[[int, int, float, float], None]:
    def update(step: int, total: int, loss: float, elapsed: float) -> None:
        bar.update(task, completed=step, total=total, loss=f"loss {loss:.3f}")

    return update


def _train_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeRemainingColumn(),
        console=err,
    )


def _recipe(**values: Any) -> Any:
    from app.embedding.training.recipe import Recipe

    try:
        return Recipe(**{k: v for k, v in values.items() if v is not None})
    except ValueError as exc:
        fail(str(exc))


@model_app.command("train")
def model_train(
    catalog: Annotated[Path, typer.Option(help="Catalog folder (products.csv + images/).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Bundle directory to write.")],
    minutes: Annotated[
        float | None, typer.Option(help="Time budget, loading included (default 8).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Train exactly this many steps (overrides --minutes).")
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(help="imagenet (pretrained image tower, default), scratch, or a BUNDLE."),
    ] = None,
    extra_pairs: Annotated[
        Path | None,
        typer.Option(help="Extra (photo, product) pairs, image_queries.csv format."),
    ] = None,
    text_tower: Annotated[
        str | None, typer.Option(help="minilm (locked, pretrained; default) or clip.")
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Input resolution.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Products per step.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    category_head: Annotated[
        bool, typer.Option(help="Auxiliary heads predicting category, colour and gender.")
    ] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle.")] = False,
) -> None:
    """Train a CLIP-style dual encoder on a catalog, offline, and write a bundle."""
    try:
        from app.embedding.training.loop import train
    except ImportError as exc:
        fail(f"training needs the [train] extra: pip install '.[train]' ({exc})")
    recipe = _recipe(
        minutes=minutes,
        steps=steps,
        init=init,
        text_tower=text_tower,
        image_size=image_size,
        batch_size=batch_size,
        seed=seed,
        category_head=category_head,
    )
    with friendly_errors(), _train_bar() as bar:
        task = bar.add_task("training", total=None, loss="")
        try:
            report = train(
                recipe, catalog, out_dir, extra_pairs, _train_progress(bar, task), overwrite
            )
        except Exception as exc:
            from app.embedding.export import ExportError
            from app.evaluation.queries import QueryFileError

            if isinstance(exc, ExportError | QueryFileError | ValueError):
                fail(str(exc))
            raise
    first, last = report.loss_drop()
    assert report.manifest is not None
    print(
        f"wrote {out_dir} ({report.manifest.model_id}): {report.steps} steps in "
        f"{report.seconds:.0f}s, {report.images_per_s:.1f} img/s, loss {first:.3f} -> {last:.3f}"
    )


@model_app.command("ensure")
def model_ensure(
    catalog: Annotated[Path, typer.Option(help="Catalog folder (products.csv + images/).")],
    extra_pairs: Annotated[
        Path | None,
        typer.Option(help="Extra (photo, product) pairs, image_queries.csv format."),
    ] = None,
    minutes: Annotated[float | None, typer.Option(help="Training budget if it must train.")] = None,
) -> None:
    """Print the default bundle's path, training it first if this catalog has none yet."""
    from app.embedding.training.ensure import ensure_model

    cfg = settings()
    with friendly_errors(), _train_bar() as bar:
        task = bar.add_task("training default model", total=None, loss="")
        bundle, report = ensure_model(
            cfg.models_dir,
            catalog,
            extra_pairs,
            _recipe(minutes=minutes),
            _train_progress(bar, task),
        )
    if report is not None:
        err.print(f"trained in {report.seconds:.0f}s ({report.steps} steps)")
    print(bundle)


@model_app.command("eval")
def model_eval(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory.")],
    catalog: Annotated[Path, typer.Option(help="Catalog the queries refer to.")],
    image_queries: Annotated[Path | None, typer.Option(help="image_queries.csv")] = None,
    text_queries: Annotated[Path | None, typer.Option(help="text_queries.csv")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write metrics here.")] = None,
) -> None:
    """Embedding-level quality of a bundle (brute force, no store): photo and text routes.

    Photos the bundle was trained on (listed in its manifest) are left out automatically.
    """
    from app.embedding import Encoder
    from app.evaluation.embedding import embed_catalog, evaluate
    from app.evaluation.queries import QueryFileError, read_image_queries, read_text_queries

    if image_queries is None and text_queries is None:
        fail("give --image-queries, --text-queries, or both")
    try:
        photos = read_image_queries(image_queries) if image_queries else []
        texts = read_text_queries(text_queries) if text_queries else []
    except QueryFileError as exc:
        fail(str(exc))
    cfg = settings()
    encoder = Encoder(bundle, device=cfg.device, threads=cfg.threads)
    trained = set(encoder.manifest.extra.get("training", {}).get("trained_photo_ids", []))
    kept = [q for q in photos if q.query_id not in trained]
    if len(kept) < len(photos):
        err.print(f"left out {len(photos) - len(kept)} photos this bundle was trained on")
    with friendly_errors():
        results = evaluate(encoder, embed_catalog(encoder, catalog), kept, texts)
    table = Table("route", "n", "recall@1", "recall@10", "mrr", "ndcg@10")
    for route, m in results.items():
        table.add_row(
            route,
            str(m["n"]),
            *(f"{m[k]:.3f}" for k in ("recall@1", "recall@10", "mrr", "ndcg@10")),
        )
    out.print(table)
    if json_out is not None:
        json_out.write_text(json.dumps({"model": encoder.model_id, "routes": results}, indent=2))


@model_app.command("quantize")
def model_quantize(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory.")],
    out_dir: Annotated[Path, typer.Option("--out", help="New bundle directory.")],
) -> None:
    """Write a copy of BUNDLE with an int8 (dynamic) text tower; compare both with model eval."""
    from app.embedding import BundleError
    from app.embedding.export import ExportError
    from app.embedding.quantize import quantize_text_tower

    try:
        quantize_text_tower(bundle, out_dir)
    except (BundleError, ExportError) as exc:
        fail(str(exc))
    print(out_dir)


@model_app.command("info")
def model_info(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory.")],
    timing: Annotated[bool, typer.Option(help="Measure ms/img at batch 1 and 32.")] = True,
) -> None:
    """Print a bundle's manifest and the inference providers this machine offers."""
    import onnxruntime as ort

    from app.embedding import BundleError, load_manifest

    try:
        manifest = load_manifest(bundle)
    except BundleError as exc:
        fail(str(exc))
    print(json.dumps(json.loads(manifest.to_json()), indent=2))
    print(f"available providers: {', '.join(ort.get_available_providers())}")
    if timing:
        from app.embedding import Encoder
        from app.embedding.benchmark import image_latency

        cfg = settings()
        encoder = Encoder(bundle, device=cfg.device, threads=cfg.threads, max_batch=32)
        for batch in (1, 32):
            ms = image_latency(encoder, batch)
            print(
                f"{encoder.provider}: {ms:.1f} ms/img at batch {batch} "
                f"({1000 / ms:.0f} img/s, {encoder.threads} threads)"
            )


@bench_app.command("ingest")
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
    from app.components import load_encoder

    cfg = settings()
    with friendly_errors():
        encoder = load_encoder(cfg)
        result = bench_ingest(
            catalog_dir, encoder, limit, batch_size=batch_size or cfg.batch_size, workers=workers
        )
    text = json.dumps(result, indent=2)
    if out is not None:
        out.write_text(text + "\n")
    print(text)


QueriesDir = Annotated[
    Path | None,
    typer.Argument(help="Folder with text_queries.csv and/or image_queries.csv."),
]
ImageQueriesOpt = Annotated[
    Path | None, typer.Option(help="Photo queries CSV (dev_queries format).")
]
TextQueriesOpt = Annotated[
    Path | None, typer.Option(help="Typed queries CSV (dev_queries format).")
]
QuerySetOpt = Annotated[
    str | None, typer.Option(help="A stored query set (see `snapshop queryset`) instead of files.")
]
JudgementsOpt = Annotated[
    bool, typer.Option("--judgements", help="Refine the answers with people's marks.")
]


def _load_queries(
    queries_dir: Path | None,
    image_queries: Path | None,
    text_queries: Path | None,
    query_set: str | None = None,
) -> list[Any]:
    """Evaluation queries from the files (or a folder holding them), or a stored set."""
    from app.evaluation.queries import QueryFileError, read_image_queries, read_text_queries
    from app.evaluation.querysets import QuerySetError, QuerySetStore
    from app.evaluation.search import eval_queries

    if queries_dir is not None:
        found = queries_dir / "image_queries.csv", queries_dir / "text_queries.csv"
        image_queries = image_queries or (found[0] if found[0].is_file() else None)
        text_queries = text_queries or (found[1] if found[1].is_file() else None)
    given_files = image_queries is not None or text_queries is not None
    if query_set is not None:
        if given_files:
            fail("give query files or --query-set, not both")
        sets = QuerySetStore(settings().querysets_path)
        try:
            return sets.load(query_set)
        except QuerySetError as exc:
            fail(str(exc))
        finally:
            sets.close()
    if not given_files:
        fail("give --image-queries CSV, --text-queries CSV, a folder holding them, or --query-set")
    try:
        photos = read_image_queries(image_queries) if image_queries else []
        texts = read_text_queries(text_queries) if text_queries else []
        return eval_queries(photos, texts)
    except (QueryFileError, OSError) as exc:
        fail(str(exc))


def _qrels(use: bool) -> dict[str, dict[str, bool]] | None:
    if not use:
        return None
    from app.components import open_judgements

    marks = open_judgements(settings())
    try:
        return marks.qrels()
    finally:
        marks.close()


@app.command("eval")
def eval_cmd(
    queries_dir: QueriesDir = None,
    image_queries: ImageQueriesOpt = None,
    text_queries: TextQueriesOpt = None,
    query_set: QuerySetOpt = None,
    judgements: JudgementsOpt = False,
    profile: Annotated[str | None, typer.Option(help="Fusion profile (default: default).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON here.")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write an HTML report with plots into this folder.")
    ] = None,
) -> None:
    """Search quality on queries with known answers: the profile's fusion and each leg alone."""
    from app.components import build_service, load_encoder, open_store
    from app.evaluation.search import evaluate_search

    queries = _load_queries(queries_dir, image_queries, text_queries, query_set)
    qrels = _qrels(judgements)
    cfg = settings()
    with friendly_errors():
        encoder = load_encoder(cfg)
        store = open_store(cfg)
        service = build_service(cfg, store, encoder)
        try:
            result = evaluate_search(
                service, queries, profile=profile, judgements=qrels, per_query=report is not None
            )
            if report is not None:
                page = _write_report(service, queries, qrels, result, profile, report)
        finally:
            service.close()
            store.close()
    records = result.pop("queries", None)
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table("queries", "fusion / leg", "n", "R@1", "R@5", "R@10", "MRR", "nDCG@10", "ms/q")
    rows = [
        (kind, f"profile {result['profile']}", result[kind])
        for kind in ("image", "text")
        if kind in result
    ]
    rows += [(v["queries"], f"leg {leg}", v) for leg, v in result["legs"].items()]
    for kind, label, m in rows:
        table.add_row(
            kind,
            label,
            str(m["n"]),
            *(f"{m[key]:.3f}" for key in ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")),
            f"{m['ms_per_query']:.1f}",
        )
    out.print(table)
    if "judgements" in result:
        j = result["judgements"]
        err.print(
            f"judgements: {j['queries_judged']} queries judged, {j['added']} answers added, "
            f"{j['removed']} removed, {j['dropped']} queries dropped"
        )
    err.print(f"model {result['model']}")
    if report is not None and records is not None:
        err.print(f"report: {page}")


def _write_report(
    service: Any,
    queries: list[Any],
    qrels: dict[str, dict[str, bool]] | None,
    result: dict[str, Any],
    profile: str | None,
    folder: Path,
) -> Path:
    """The HTML report: ``result`` plus weight sweeps over the queries' cached leg lists."""
    from functools import lru_cache

    from app.evaluation.offline import collect, sweep
    from app.evaluation.report import write_report
    from app.evaluation.search import apply_judgements

    chosen = service.profile(profile)
    base = chosen.spec()
    if qrels is not None:
        queries, _ = apply_judgements(queries, qrels)
    cached = collect(service, queries, profile)
    sweeps = {}
    for kind in ("image", "text"):
        subset = [c for c in cached if c.kind == kind]
        legs = sorted({leg for c in subset for leg in c.lists})
        if subset:
            sweeps[kind] = sweep(subset, base, legs, chosen.exact_match)

    @lru_cache(maxsize=4096)
    def payload(pid: str) -> dict[str, Any]:
        points = service.store.product_points(pid)
        return dict(points[0].payload) if points else {}

    def image_of(pid: str) -> Path | None:
        path = payload(pid).get("image_path")
        return Path(path) if path else None

    def category_of(pid: str) -> str:
        return str(payload(pid).get("category_path", ""))

    return write_report(folder, result, sweeps, image_of, category_of)


@app.command("tune")
def tune_cmd(
    queries_dir: QueriesDir = None,
    image_queries: ImageQueriesOpt = None,
    text_queries: TextQueriesOpt = None,
    query_set: QuerySetOpt = None,
    judgements: JudgementsOpt = False,
    profile: Annotated[
        str | None, typer.Option(help="Profile to start from and compare with (default).")
    ] = None,
    metric: Annotated[str, typer.Option(help="What to maximise.")] = "ndcg@10",
    trials: Annotated[int, typer.Option(min=1, help="Random fusions tried before refining.")] = 200,
    validation: Annotated[
        float, typer.Option(min=0.05, max=0.95, help="Share of queries held out.")
    ] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the split and the search.")] = 0,
    methods: Annotated[
        str, typer.Option(help="Fusion methods to try, comma-separated.")
    ] = "rrf,minmax,zscore,dbsf",
    save: Annotated[
        str | None, typer.Option(help="Save the winner as a new version of this profile.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON here.")] = None,
) -> None:
    """Choose fusion method, k and leg weights on a training split; grade on held-out queries."""
    from app.components import build_service, load_encoder, open_profiles, open_store
    from app.evaluation.offline import collect
    from app.evaluation.search import apply_judgements
    from app.evaluation.tune import MIN_GAIN, MIN_T, tune
    from app.profiles.model import FusionProfile

    queries = _load_queries(queries_dir, image_queries, text_queries, query_set)
    qrels = _qrels(judgements)
    if qrels is not None:
        queries, _ = apply_judgements(queries, qrels)
    cfg = settings()
    with friendly_errors():
        encoder = load_encoder(cfg)
        store = open_store(cfg)
        repo = open_profiles(cfg)
        service = build_service(cfg, store, encoder, repo)
        try:
            base = service.profile(profile)
            err.print(f"running the legs of {len(queries)} queries once ...")
            cached = collect(service, queries, profile)
            try:
                result = tune(
                    cached,
                    base,
                    metric,
                    trials,
                    validation,
                    seed,
                    [m.strip() for m in methods.split(",") if m.strip()],
                )
            except ValueError as exc:
                fail(str(exc))
            saved: FusionProfile | None = None
            if save is not None and result.improved:
                fields = base.model_dump(exclude={"name", "version", "updated_at"})
                fields.update(result.best.model_dump())
                fields["name"] = save
                fields["description"] = (
                    f"snapshop tune from {base.name}@{base.version}: {metric} "
                    f"train {result.train['base']:.4f} -> {result.train['best']:.4f}, "
                    f"validation {result.validation['base']:.4f} -> "
                    f"{result.validation['best']:.4f} ({result.n_train}/{result.n_validation} "
                    f"queries, seed {seed})"
                )
                try:
                    saved = repo.save(FusionProfile.model_validate(fields))
                except ValidationError as exc:
                    fail(f"cannot save profile {save!r}: {exc.errors()[0]['msg']}")
        finally:
            service.close()
            repo.close()
            store.close()
    body = {"profile": f"{base.name}@{base.version}", **result.to_json()}
    if saved is not None:
        body["saved"] = f"{saved.name}@{saved.version}"
    if json_out is not None:
        json_out.write_text(json.dumps(body, indent=2) + "\n")
    table = Table("fusion", "method", "k", "weights", f"train {metric}", f"validation {metric}")
    for label, spec, key in (
        (f"start ({base.name}@{base.version})", result.base, "base"),
        ("best on train", result.best, "best"),
    ):
        weights = ", ".join(f"{leg} {spec.weight(leg):g}" for leg in result.legs)
        table.add_row(
            label,
            spec.method,
            str(spec.k) if spec.method == "rrf" else "-",  # k is RRF's alone
            weights,
            f"{result.train[key]:.4f}",
            f"{result.validation[key]:.4f}",
        )
    out.print(table)
    err.print(
        f"{result.trials} fusions tried on {result.n_train} training queries; "
        f"{result.n_validation} held out for validation"
    )
    if not result.improved:
        c = result.candidate
        err.print(
            "kept the starting profile: the best on train "
            f"({c['fusion']['method']}, train {c['train']:.4f}, validation "
            f"{c['validation']:.4f}, paired t {c['paired_t']}) did not beat it consistently "
            f"enough (needs a gain over {MIN_GAIN} and t >= {MIN_T})"
        )
    if saved is not None:
        err.print(f"saved as profile {saved.name}@{saved.version}")
    elif save is not None:
        err.print(f"nothing saved: {save!r} would equal the starting profile")


@bench_app.command("search")
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
    from app.components import load_encoder, open_profiles, open_store
    from app.evaluation.queries import read_image_queries, read_text_queries
    from app.search.service import SearchQuery, SearchService

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
        encoder = load_encoder(cfg)
        store = open_store(cfg)
        repo = open_profiles(cfg)
        kwargs = {"profiles": repo, "rrf_k": cfg.rrf_k, "max_k": cfg.max_k}
        plain = SearchService(store, encoder, micro_batch=False, **kwargs)  # type: ignore[arg-type]
        batched = SearchService(store, encoder, micro_batch=True, **kwargs)  # type: ignore[arg-type]
        try:
            result = bench_search(plain, batched, mixed, concurrency, rounds)
        finally:
            plain.close()
            batched.close()
            repo.close()
            store.close()
    text = json.dumps(result, indent=2)
    if out is not None:
        out.write_text(text + "\n")
    print(text)


@judgements_app.command("add")
def judgements_add(
    product: Annotated[str, typer.Option(help="The product id marked.")],
    judge: Annotated[str, typer.Option(help="Who is marking (name or handle).")],
    relevant: Annotated[
        bool | None, typer.Option("--relevant/--not-relevant", help="The mark (required).")
    ] = None,
    query: Annotated[str | None, typer.Option(help="A typed query.")] = None,
    image: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="A query photo.")
    ] = None,
    query_key: Annotated[
        str | None, typer.Option(help="A key as listed: text:<query> or image:<sha256>.")
    ] = None,
    note: Annotated[str, typer.Option(help="Why, for whoever reads it later.")] = "",
) -> None:
    """Record a mark for (query, product); it replaces the judge's earlier mark."""
    from app.evaluation.judgements import JudgementStore, image_key, text_key

    if sum(q is not None for q in (query, image, query_key)) != 1:
        fail("give exactly one of --query, --image or --query-key")
    if relevant is None:
        fail("give --relevant or --not-relevant")
    store = JudgementStore(settings().judgements_path)
    try:
        if query is not None:
            key = text_key(query)
        elif image is not None:
            key = image_key(image.read_bytes())
        else:
            key = query_key or ""
        mark = store.record(key, product, relevant, judge, note)
    except (ValueError, OSError) as exc:  # JudgementError is a ValueError
        fail(str(exc))
    finally:
        store.close()
    verdict = "relevant" if mark.relevant else "not relevant"
    out.print(f"{mark.judge}: {mark.product_id} is {verdict} for {mark.query_key}", highlight=False)


@judgements_app.command("list")
def judgements_list(
    query_key: Annotated[str | None, typer.Option(help="Only this query key.")] = None,
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    judge: Annotated[str | None, typer.Option(help="Only this judge's marks.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to show, newest first.")] = 50,
) -> None:
    """The marks, newest first."""
    from app.evaluation.judgements import JudgementError, JudgementStore

    store = JudgementStore(settings().judgements_path)
    try:
        total = store.count(query_key, product, judge)
        marks = store.list(query_key, product, judge, limit=limit)
    except JudgementError as exc:
        fail(str(exc))
    finally:
        store.close()
    table = Table("updated (UTC)", "judge", "query key", "product", "relevant", "note")
    for m in marks:
        table.add_row(
            m.updated_at[:19],
            m.judge,
            m.query_key,
            m.product_id,
            "yes" if m.relevant else "no",
            m.note,
        )
    out.print(table)
    err.print(f"{len(marks)} of {total} marks")


@judgements_app.command("export")
def judgements_export(
    file: Annotated[Path, typer.Argument(help="CSV to write; - for stdout.")],
) -> None:
    """Every mark as CSV (query_key,product_id,relevant,judge,note,updated_at)."""
    import sys

    from app.evaluation.judgements import JudgementStore

    store = JudgementStore(settings().judgements_path)
    try:
        if str(file) == "-":
            n = store.export_csv(sys.stdout)
        else:
            with file.open("w", newline="", encoding="utf-8") as fh:
                n = store.export_csv(fh)
    except OSError as exc:
        fail(str(exc))
    finally:
        store.close()
    err.print(f"wrote {n} marks to {'stdout' if str(file) == '-' else file}", highlight=False)


@judgements_app.command("import")
def judgements_import(
    file: Annotated[Path, typer.Argument(help="CSV as written by export; - for stdin.")],
) -> None:
    """Upsert the marks of a CSV: all or nothing, a bad row imports none and says where."""
    import sys

    from app.evaluation.judgements import JudgementError, JudgementStore

    store = JudgementStore(settings().judgements_path)
    try:
        if str(file) == "-":
            n = store.import_csv(sys.stdin, "stdin")
        else:
            # utf-8-sig: a spreadsheet's BOM is not part of the first column's name.
            with file.open(newline="", encoding="utf-8-sig") as fh:
                n = store.import_csv(fh, str(file))
    except (JudgementError, OSError, UnicodeDecodeError) as exc:
        fail(str(exc))
    finally:
        store.close()
    out.print(f"imported {n} marks from {file}", highlight=False)


@queryset_app.command("add")
def queryset_add(
    name: Annotated[str, typer.Argument(help="Name to store the set under (replaces one).")],
    queries_dir: QueriesDir = None,
    image_queries: ImageQueriesOpt = None,
    text_queries: TextQueriesOpt = None,
) -> None:
    """Store the query files (rows and photos) under a name."""
    from app.components import open_querysets
    from app.evaluation.querysets import QuerySetError

    queries = _load_queries(queries_dir, image_queries, text_queries)
    source = ", ".join(
        str(p.resolve()) for p in (queries_dir, image_queries, text_queries) if p is not None
    )
    sets = open_querysets(settings())
    try:
        info = sets.save(name, queries, source)
    except QuerySetError as exc:
        fail(str(exc))
    finally:
        sets.close()
    out.print(
        f"query set {info.name}: {info.image_queries} photo and {info.text_queries} typed queries",
        highlight=False,
    )


@queryset_app.command("list")
def queryset_list() -> None:
    """The stored query sets."""
    from app.components import open_querysets

    sets = open_querysets(settings())
    try:
        found = sets.list()
    finally:
        sets.close()
    table = Table("name", "photo queries", "typed queries", "saved (UTC)", "from")
    for s in found:
        table.add_row(s.name, str(s.image_queries), str(s.text_queries), s.saved_at, s.source)
    out.print(table)


@queryset_app.command("remove")
def queryset_remove(name: Annotated[str, typer.Argument(help="The set to delete.")]) -> None:
    """Delete a stored query set."""
    from app.components import open_querysets

    sets = open_querysets(settings())
    try:
        removed = sets.delete(name)
    finally:
        sets.close()
    if not removed:
        fail(f"no query set {name!r}")
    out.print(f"removed query set {name}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
