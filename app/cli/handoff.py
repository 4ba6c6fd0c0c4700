"""``snapshop ingest`` on a data dir that a running server holds: the sync runs in the server.

The embedded store admits one process, so instead of failing on its lock the CLI asks the
server (found through ``<data-dir>/server.json``) to run the sync, follows the job, and prints
what a local run prints. Plain lines, not a progress bar: they must reach logs and pipes too.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.api.announce import ServerInfo
from app.cli.common import err, fail
from app.settings import Settings
from ingestion.sync import SyncOptions

POLL_S = 0.5
QUIET_S = 5.0  # a progress line at least this often, even when nothing moved


def call_server(
    server: ServerInfo, key: str, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One admin request to ``server``; its JSON answer, or the CLI exits with its reason."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        server.url + path,
        data=data,
        method=method,
        headers={"X-API-Key": key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        fail(f"the server at {server.url} refused ({exc.code}): {detail}")
    except (urllib.error.URLError, OSError) as exc:
        fail(
            f"a server (pid {server.pid}, since {server.started_at}) announces {server.url} for "
            f"this data dir but does not answer ({exc}); stop it, or remove server.json if it "
            "is gone"
        )


def admin_key(server: ServerInfo, cfg: Settings, doing: str) -> str:
    """The admin key for ``server``, or the CLI exits saying how to give it."""
    if cfg.admin_key is None:
        fail(
            f"a running server ({server.url}, pid {server.pid}) holds {cfg.data_dir}: set "
            f"SNAPSHOP_ADMIN_KEY to its admin key so that {doing} can be handed to it, "
            "or stop the server"
        )
    return cfg.admin_key.get_secret_value()


def hand_off(
    server: ServerInfo, cfg: Settings, catalog_dir: Path, options: SyncOptions
) -> dict[str, Any]:
    """Run the sync in ``server``, printing progress to stderr; the finished job."""
    key = admin_key(server, cfg, "the sync")
    body = {"catalog": str(catalog_dir.resolve()), **asdict(options)}
    job = call_server(server, key, "POST", "/v1/admin/sync", body)
    name = job["job"]
    err.print(f"a server holds this data dir: sync {name} runs in {server.url}", soft_wrap=True)
    last: tuple[int, int | None] | None = None
    said = time.monotonic()
    try:
        while job["state"] in ("queued", "running"):
            time.sleep(POLL_S)
            job = call_server(server, key, "GET", f"/v1/admin/sync/{name}")
            now = (job["progress"]["images_done"], job["progress"]["images_total"])
            if now != last or time.monotonic() - said >= QUIET_S:
                total = "?" if now[1] is None else now[1]
                err.print(f"sync {name}: {job['state']}, embedded {now[0]}/{total} images")
                last, said = now, time.monotonic()
    except KeyboardInterrupt:
        err.print(f"stopped waiting; sync {name} goes on in the server")
        raise
    if job["state"] != "done":
        fail(f"sync {name} {job['state']}: {job['error']}")
    return job
