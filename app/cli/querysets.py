"""``snapshop queryset``: store, list and remove named query sets for evaluation."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from app.cli.common import (
    ImageQueriesOpt,
    QueriesDir,
    TextQueriesOpt,
    fail,
    load_queries,
    out,
    query_sets,
)

app = typer.Typer(
    no_args_is_help=True, help="Stored query sets, for `eval --query-set` and POST /v1/eval/run."
)


@app.command("add")
def queryset_add(
    name: Annotated[str, typer.Argument(help="Name to store the set under (replaces one).")],
    queries_dir: QueriesDir = None,
    image_queries: ImageQueriesOpt = None,
    text_queries: TextQueriesOpt = None,
) -> None:
    """Store the query files (rows and photos) under a name."""
    from app.evaluation.querysets import QuerySetError

    queries = load_queries(queries_dir, image_queries, text_queries)
    source = ", ".join(
        str(p.resolve()) for p in (queries_dir, image_queries, text_queries) if p is not None
    )
    with query_sets() as sets:
        try:
            info = sets.save(name, queries, source)
        except QuerySetError as exc:
            fail(str(exc))
    out.print(
        f"query set {info.name}: {info.image_queries} photo and {info.text_queries} typed queries",
        highlight=False,
    )


@app.command("list")
def queryset_list() -> None:
    """The stored query sets."""
    with query_sets() as sets:
        found = sets.summaries()
    table = Table("name", "photo queries", "typed queries", "saved (UTC)", "from")
    for s in found:
        table.add_row(s.name, str(s.image_queries), str(s.text_queries), s.saved_at, s.source)
    out.print(table)


@app.command("remove")
def queryset_remove(name: Annotated[str, typer.Argument(help="The set to delete.")]) -> None:
    """Delete a stored query set."""
    with query_sets() as sets:
        removed = sets.delete(name)
    if not removed:
        fail(f"no query set {name!r}")
    out.print(f"removed query set {name}", highlight=False)
