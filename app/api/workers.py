"""``snapshop serve --workers N``: N uvicorn processes, each with its own app, encoder and
store client, for a Qdrant server (the embedded store admits one process).

The API keeps nothing a worker must share: the catalog is the server's, a model swap is an
alias every worker follows, and metrics are summed over the workers through prometheus-client's
multiprocess mode. Each worker builds its app from the environment (``factory``, an import
string), so what the command line set is passed on as ``SNAPSHOP_*`` variables.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.observability.metrics import MULTIPROC_ENV
from app.settings import Settings


def refuse_workers(settings: Settings, workers: int) -> str | None:
    """Why ``workers`` processes cannot serve ``settings``' store; None when they can."""
    if workers <= 1 or settings.qdrant_url:
        return None
    where = (
        f"qdrant-client's local mode ({settings.qdrant_path})"
        if settings.qdrant_path is not None
        else f"the embedded store ({settings.store_dir})"
    )
    return (
        f"--workers {workers} needs a Qdrant server (SNAPSHOP_QDRANT_URL): {where} is opened "
        "by one process; serve with one worker, or put the catalog on a Qdrant server"
    )


@contextmanager
def metrics_dir() -> Iterator[Path]:
    """``PROMETHEUS_MULTIPROC_DIR`` for the workers: the operator's (emptied of an earlier
    run's files, which would be summed in), else a temporary one removed afterwards."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix="snapshop-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield folder
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def run_workers(
    factory: str,
    *,
    host: str,
    port: int,
    workers: int,
    log_config: dict[str, Any],
    env: Mapping[str, str],
) -> None:
    """Serve ``factory``'s app in ``workers`` processes on ``host:port`` until stopped."""
    import uvicorn

    os.environ.update(env)  # the workers are started from this environment
    with metrics_dir():
        uvicorn.run(
            factory,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=log_config,
            access_log=False,
        )


def settings_env(overrides: Mapping[str, Any]) -> dict[str, str]:
    """Command-line settings as the ``SNAPSHOP_*`` variables a worker's ``Settings`` reads."""
    return {f"SNAPSHOP_{k.upper()}": str(v) for k, v in overrides.items() if v is not None}
