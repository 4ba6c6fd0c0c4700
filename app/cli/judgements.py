"""``snapshop judgements``: people's relevant / not-relevant marks; add, list, CSV export/import."""

from __future__ import annotations

import sys
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from app.cli.common import err, fail, out, settings

if TYPE_CHECKING:
    from app.evaluation.judgements import JudgementStore

app = typer.Typer(
    no_args_is_help=True, help="People's relevant / not-relevant marks (extra known answers)."
)


def _marks() -> closing[JudgementStore]:
    """The marks database, closed when the block ends."""
    from app.evaluation.judgements import JudgementStore

    return closing(JudgementStore(settings().judgements_path))


@app.command("add")
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
    from app.evaluation.judgements import image_key, text_key

    if sum(q is not None for q in (query, image, query_key)) != 1:
        fail("give exactly one of --query, --image or --query-key")
    if relevant is None:
        fail("give --relevant or --not-relevant")
    with _marks() as store:
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
    verdict = "relevant" if mark.relevant else "not relevant"
    out.print(f"{mark.judge}: {mark.product_id} is {verdict} for {mark.query_key}", highlight=False)


@app.command("list")
def judgements_list(
    query_key: Annotated[str | None, typer.Option(help="Only this query key.")] = None,
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    judge: Annotated[str | None, typer.Option(help="Only this judge's marks.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to show, newest first.")] = 50,
) -> None:
    """The marks, newest first."""
    from app.evaluation.judgements import JudgementError

    with _marks() as store:
        try:
            total = store.count(query_key, product, judge)
            marks = store.find(query_key, product, judge, limit=limit)
        except JudgementError as exc:
            fail(str(exc))
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


@app.command("export")
def judgements_export(
    file: Annotated[Path, typer.Argument(help="CSV to write; - for stdout.")],
) -> None:
    """Every mark as CSV (query_key,product_id,relevant,judge,note,updated_at)."""
    with _marks() as store:
        try:
            if str(file) == "-":
                n = store.export_csv(sys.stdout)
            else:
                with file.open("w", newline="", encoding="utf-8") as fh:
                    n = store.export_csv(fh)
        except OSError as exc:
            fail(str(exc))
    err.print(f"wrote {n} marks to {'stdout' if str(file) == '-' else file}", highlight=False)


@app.command("import")
def judgements_import(
    file: Annotated[Path, typer.Argument(help="CSV as written by export; - for stdin.")],
) -> None:
    """Upsert the marks of a CSV: all or nothing, a bad row imports none and says where."""
    from app.evaluation.judgements import JudgementError

    with _marks() as store:
        try:
            if str(file) == "-":
                n = store.import_csv(sys.stdin, "stdin")
            else:
                # utf-8-sig: a spreadsheet's BOM is not part of the first column's name.
                with file.open(newline="", encoding="utf-8-sig") as fh:
                    n = store.import_csv(fh, str(file))
        except (JudgementError, OSError, UnicodeDecodeError) as exc:
            fail(str(exc))
    out.print(f"imported {n} marks from {file}", highlight=False)
