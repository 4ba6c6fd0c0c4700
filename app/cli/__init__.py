"""The ``snapshop`` command line: catalog sync, search, serving, evaluation and tuning, models.

``root`` holds the Typer app and its global options, ``common`` what the commands share; each
other module is one command group. Commands are registered here, in one place, because the order
of registration is the order ``snapshop --help`` lists them in.
"""

from __future__ import annotations

from app.cli import (
    bench,
    collections,
    evaluate,
    ingest,
    judgements,
    model,
    queries,
    querysets,
    search,
)
from app.cli.root import app

app.command()(ingest.ingest)
app.command()(search.search)
app.command()(search.serve)
app.command()(ingest.status)
app.command("eval")(evaluate.eval_cmd)
app.command("tune")(evaluate.tune_cmd)
app.add_typer(collections.app, name="collections")
app.add_typer(model.app, name="model")
app.add_typer(bench.app, name="bench")
app.add_typer(judgements.app, name="judgements")
app.add_typer(querysets.app, name="queryset")
app.add_typer(queries.app, name="queries")

__all__ = ["app", "main"]


def main() -> None:
    app()
