"""``snapshop model``: export, train, ensure, evaluate, quantize and inspect model bundles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.common import (
    err,
    fail,
    friendly_errors,
    out,
    progress_bar,
    settings,
    train_progress,
)

app = typer.Typer(no_args_is_help=True, help="Create and inspect model bundles.")

_IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def _recipe(**values: Any) -> Any:
    from app.embedding.training.recipe import Recipe

    try:
        return Recipe(**{k: v for k, v in values.items() if v is not None})
    except ValueError as exc:
        fail(str(exc))


@app.command("export")
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


@app.command("train")
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
    instance_dim: Annotated[
        int | None,
        typer.Option(help="Size of the instance (identity) embedding; 0 = no instance head."),
    ] = None,
    instance_weight: Annotated[
        float | None,
        typer.Option(help="Weight of the multi-view instance loss beside the text loss."),
    ] = None,
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
        instance_dim=instance_dim,
        instance_weight=instance_weight,
    )
    with friendly_errors(), progress_bar("loss") as progress:
        task = progress.add_task("training", total=None, loss="")
        try:
            report = train(
                recipe, catalog, out_dir, extra_pairs, train_progress(progress, task), overwrite
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
        + (
            " (instance {:.3f} -> {:.3f})".format(*report.loss_drop(losses=report.instance_losses))
            if report.instance_losses
            else ""
        )
    )


@app.command("ensure")
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
    with friendly_errors(), progress_bar("loss") as progress:
        task = progress.add_task("training default model", total=None, loss="")
        bundle, report = ensure_model(
            cfg.models_dir,
            catalog,
            extra_pairs,
            _recipe(minutes=minutes),
            train_progress(progress, task),
        )
    if report is not None:
        err.print(f"trained in {report.seconds:.0f}s ({report.steps} steps)")
    print(bundle)


@app.command("eval")
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


@app.command("quantize")
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


@app.command("info")
def model_info(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory.")],
    timing: Annotated[
        bool, typer.Option(help="Measure ms per image and per text at batch 1 and 32.")
    ] = True,
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
        from app.embedding.benchmark import image_latency, text_latency

        cfg = settings()
        encoder = Encoder(bundle, device=cfg.device, threads=cfg.threads, max_batch=32)
        for batch in (1, 32):
            ms = image_latency(encoder, batch)
            print(
                f"{encoder.provider}: {ms:.1f} ms/img at batch {batch} "
                f"({1000 / ms:.0f} img/s, {encoder.threads} threads)"
            )
        tokens = "dynamic tokens" if encoder.text_dynamic_length else "fixed tokens"
        for batch in (1, 32):
            ms = text_latency(encoder, batch)
            print(f"{encoder.provider}: {ms:.2f} ms/text at batch {batch} ({tokens})")
