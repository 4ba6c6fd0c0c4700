"""``snapshop queries``: generate evaluation query sets from a catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import err, fail, friendly_errors, out, progress_bar

app = typer.Typer(no_args_is_help=True, help="Generate evaluation query sets from a catalog.")


@app.command("snapshots")
def queries_snapshots(
    catalog: Annotated[Path, typer.Option(help="Catalog folder (products.csv + images/).")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for image_queries.csv and images/.")
    ],
    n: Annotated[int, typer.Option("--n", min=1, help="How many queries (one per product).")] = 200,
    seed: Annotated[int, typer.Option(help="Same seed and catalog, same files.")] = 0,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            help="Top-level category to leave out of the sample (repeatable; default Grocery, "
            "which has real shelf photos). Left-out products still compete in the index."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a set already at --out.")] = False,
) -> None:
    """Synthetic phone snapshots of catalog products, as a dev_queries-format photo set."""
    from app.evaluation.snapshots import DEFAULT_EXCLUDE, SnapshotError, write_snapshot_set

    with friendly_errors(), progress_bar("note") as progress:
        task = progress.add_task("snapshots", total=n, note="")

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            made = write_snapshot_set(
                catalog,
                out_dir,
                n=n,
                seed=seed,
                exclude=tuple(exclude) if exclude is not None else DEFAULT_EXCLUDE,
                overwrite=overwrite,
                progress=update,
            )
        except SnapshotError as exc:
            fail(str(exc))
    if made.skipped_rows:
        err.print(f"skipped {made.skipped_rows} catalog row(s) the catalog reader rejects")
    out.print(
        f"wrote {made.count} snapshot queries (from {made.eligible} products) to {made.csv_path}",
        highlight=False,
        soft_wrap=True,
    )
