"""``snapshop collections``: the store's collections (one per model), swapping the live one,
dropping old ones.

A model change without downtime: ``snapshop --model NEW ingest CATALOG --new-collection``
builds the new model's collection beside the live one, ``snapshop collections swap NAME`` makes
it live in one atomic step (searches never fail meanwhile), and the old one stays until
``snapshop collections drop OLD``. With a server holding the data dir, each command is handed to
it (``SNAPSHOP_ADMIN_KEY``), which switches its model and collection together.
"""

from __future__ import annotations

from contextlib import closing
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import err, fail, friendly_errors, settings
from app.store.collections import CollectionInfo

if TYPE_CHECKING:
    from app.api.announce import ServerInfo

app = typer.Typer(
    no_args_is_help=True,
    help="The store's collections, one per model: list them, swap the live one, drop old ones.",
)


def print_collections(rows: list[CollectionInfo], indent: str = "", title: str = "") -> None:
    """One line per collection, the live one marked ``*``."""
    if title:
        print(title)
    if not rows:
        print(f"{indent}none yet: run `snapshop ingest CATALOG_DIR`")
    width = max((len(c.name) for c in rows), default=0)
    for c in rows:
        points = "?" if c.points is None else str(c.points)
        line = (
            f"{indent}{'*' if c.live else ' '} {c.name:<{width}}  model {c.model_id or '-'}  "
            f"{points} points  created {c.created_at or '-'}"
        )
        if c.error:
            line += f"  ({c.error})"
        print(line)


def _server() -> tuple[ServerInfo, str] | None:
    """The server holding this data dir and its admin key, or None (run here)."""
    from app.api.announce import read_server_file
    from app.cli.handoff import admin_key

    cfg = settings()
    server = read_server_file(cfg.data_dir)
    if server is None:
        return None
    return server, admin_key(server, cfg, "the command")


@app.command("list")
def list_cmd() -> None:
    """Every collection with its model, points and creation time; ``*`` marks the live one."""
    from app.cli.handoff import call_server
    from app.components import open_collections

    held = _server()
    if held is not None:
        server, key = held
        body = call_server(server, key, "GET", "/v1/admin/collections")
        rows = [
            CollectionInfo(
                name=c["name"],
                live=c["live"],
                model_id=c["model"],
                points=c["points"],
                created_at=c["created_at"],
                bundle=c["bundle"],
                error=c["error"],
            )
            for c in body["collections"]
        ]
    else:
        with friendly_errors(), closing(open_collections(settings())) as collections:
            rows = collections.list()
    print_collections(rows)


@app.command("swap")
def swap(
    name: Annotated[str, typer.Argument(help="The collection to make live.")],
) -> None:
    """Make collection NAME live (its model with it); the old one is kept."""
    from app.cli.handoff import call_server
    from app.components import open_collections

    held = _server()
    if held is not None:
        server, key = held
        body = call_server(server, key, "POST", "/v1/admin/collections/swap", {"collection": name})
        live, model, previous = body["live"], body["model"], body["previous"]
        followers = f"{server.url} serves it now"
    else:
        cfg = settings()
        with friendly_errors(), closing(open_collections(cfg)) as collections:
            meta = collections.meta(name) or {}
            with closing(collections.open(name)) as store:
                if store.count() == 0:
                    fail(f"the collection {name} holds no points: build it first")
            previous = collections.swap(name)
        live, model = name, meta.get("model_id")
        followers = (
            f"API processes follow within SNAPSHOP_SWAP_POLL_S ({cfg.swap_poll_s:g} s)"
            if collections.backend != "qdrant-edge"
            else "the next `snapshop serve` serves it"
        )
    print(f"live: {live} (model {model}); {followers}")
    if previous is not None and previous != live:
        err.print(
            f"{previous} is kept (swap back to undo); drop it with "
            f"`snapshop collections drop {previous}` once no server serves it",
            soft_wrap=True,
        )


@app.command("drop")
def drop(
    name: Annotated[str, typer.Argument(help="The collection to delete (not the live one).")],
) -> None:
    """Delete collection NAME and its points; the live collection is refused."""
    from app.cli.handoff import call_server
    from app.components import open_collections

    held = _server()
    if held is not None:
        server, key = held
        call_server(server, key, "DELETE", f"/v1/admin/collections/{name}")
    else:
        with friendly_errors(), closing(open_collections(settings())) as collections:
            collections.drop(name)
    print(f"dropped {name}")
