"""``snapshop search`` (one query, printed as a table or the API's JSON) and ``snapshop serve``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from app.cli.common import err, fail, friendly_errors, out, settings


def _run_search(query_args: dict[str, Any], image: Path | None) -> dict[str, Any]:
    from app.components import open_components
    from app.search.query import SearchQuery
    from app.search.schemas import SearchBody, validation_reasons

    cfg = settings()
    with friendly_errors():
        try:
            body = SearchBody.model_validate(query_args)
        except ValidationError as exc:
            fail(validation_reasons(exc, whole="input"))
        data = image.read_bytes() if image is not None else None
        with open_components(cfg) as parts:
            response = parts.service.search(SearchQuery.from_body(body, data))
    return response.model_dump()


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"{option} takes NAME=VALUE, got {item!r}")
        pairs[name.strip()] = value.strip()
    return pairs


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


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Server processes (env SNAPSHOP_WORKERS; default 1); more than 1 needs a "
            "Qdrant server (SNAPSHOP_QDRANT_URL).",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from app.api.announce import local_url
    from app.api.main import create_app
    from app.api.workers import refuse_workers, run_workers, settings_env
    from app.cli.common import State
    from app.observability.logs import log_config

    cfg = settings()
    count = workers or cfg.workers
    reason = refuse_workers(cfg, count)
    if reason is not None:
        fail(reason)
    bind, number = host or cfg.host, port or cfg.port
    with friendly_errors():
        from app.components import load_encoder

        # Loaded here so a missing or broken model fails before the port is bound.
        encoder = load_encoder(cfg)
        if count > 1:
            del encoder  # each worker loads its own
            # No server.json: with a Qdrant server, `snapshop ingest` runs in its own process.
            run_workers(
                "app.api.main:app_from_env",
                host=bind,
                port=number,
                workers=count,
                log_config=log_config(cfg.log_format),
                env=settings_env(State.overrides),
            )
            return
        uvicorn.run(
            # Announced in <data-dir>/server.json: `snapshop ingest` hands its syncs to us.
            create_app(cfg, encoder, announce=local_url(bind, number)),
            host=bind,
            port=number,
            # snapshop's format (SNAPSHOP_LOG_FORMAT) for uvicorn's lines too; the request
            # middleware writes the access lines, with the route and the request id
            log_config=log_config(cfg.log_format),
            access_log=False,
        )
