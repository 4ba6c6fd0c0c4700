"""``snapshop bench``: ingest throughput and search latency, each with its baseline, as JSON."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import friendly_errors, settings

app = typer.Typer(no_args_is_help=True, help="Benchmarks (JSON out), each with a baseline.")


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
