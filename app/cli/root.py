"""The root ``snapshop`` Typer app and its global options (data dir, model, device, verbosity)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import State

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The ``snapshop`` command line: catalog sync, search, serving, evaluation and tuning, "
    "models.",
)


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
    State.overrides = {k: v for k, v in overrides.items() if v is not None}
