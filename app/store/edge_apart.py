"""The embedded engine's index build, run on a copy of the shard in a child process.

qdrant-edge holds the GIL for the whole of ``optimize``: in a serving process, a sync that
rewrote a quarter of a 100k catalog froze every search (and ``/healthz``) for the 170 s the
build took. A shard may be open in one process only, so the build cannot run in another
process on the live shard. It runs on a copy instead (``shard.building``), and the built copy
then takes the live shard's place (``swap_in``); the old one is kept as ``shard.old`` until
the new one is open, so a crash at any step leaves one whole shard (``recover``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from app.processes import stop
from app.store.errors import StoreError

BUILDING_DIR = "shard.building"
OLD_DIR = "shard.old"
# Seconds the child gets to end after SIGTERM when the build is abandoned.
STOP_GRACE_S = 10.0
# How often a waiting build looks whether the store is closing (a server shutting down must
# not wait minutes for a build it will throw away).
CANCEL_POLL_S = 0.2

# The child: only the engine, none of snapshop's imports. It prints whether anything changed.
CHILD = (
    "import json, sys, qdrant_edge as qe\n"
    "shard = qe.EdgeShard.load(sys.argv[1])\n"
    "built = bool(shard.optimize())\n"
    "shard.flush()\n"
    "shard.close()\n"
    "print(json.dumps({'optimized': built}))\n"
)


def optimize_copy(shard_dir: Path, building: Path, cancel: threading.Event) -> bool:
    """Copy ``shard_dir`` (flushed, with no writes until the swap) to ``building`` and build
    its index in a child process: whether the engine changed anything. On any failure, or
    once ``cancel`` is set (the store is closing), the copy is removed and ``StoreError``
    says why; the live shard is never touched."""
    shutil.rmtree(building, ignore_errors=True)
    try:
        shutil.copytree(shard_dir, building)
        return _run_child(building, cancel)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _run_child(building: Path, cancel: threading.Event) -> bool:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(building)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        while True:
            if cancel.is_set():
                raise StoreError(f"the index build of {building} was cancelled: the store closed")
            try:
                out, err = proc.communicate(timeout=CANCEL_POLL_S)
                break
            except subprocess.TimeoutExpired:
                continue
    except BaseException:  # cancelled, or the caller gave up (Ctrl-C): no orphan build
        stop(proc, STOP_GRACE_S)
        raise
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise StoreError(
            f"the index build of {building} failed (exit {proc.returncode}): {' | '.join(tail)}"
        )
    try:
        return bool(json.loads(out.decode().strip().splitlines()[-1])["optimized"])
    except (ValueError, KeyError, IndexError) as exc:
        raise StoreError(f"the index build of {building} said {out!r}") from exc


def swap_in(shard_dir: Path, building: Path) -> Path:
    """Put the built copy in ``shard_dir``'s place (the shard must be closed): the old shard's
    folder, to delete once the new one is open."""
    old = shard_dir.parent / OLD_DIR
    shutil.rmtree(old, ignore_errors=True)
    os.replace(shard_dir, old)
    os.replace(building, shard_dir)
    return old


def put_back(shard_dir: Path, old: Path) -> None:
    """Undo ``swap_in`` (the new shard would not open): the old shard in its place again."""
    shutil.rmtree(shard_dir, ignore_errors=True)
    os.replace(old, shard_dir)


def recover(shard_dir: Path) -> None:
    """Before opening: a crash between ``swap_in``'s two renames left no shard, only the old
    one, which is whole (the built copy may not be): put it back."""
    old = shard_dir.parent / OLD_DIR
    if not shard_dir.exists() and old.is_dir():
        os.replace(old, shard_dir)


def remove_leftovers(shard_dir: Path) -> None:
    """Once this process holds the shard (no other can be building beside it): a build copy
    or an old shard left by a crash."""
    for name in (BUILDING_DIR, OLD_DIR):
        shutil.rmtree(shard_dir.parent / name, ignore_errors=True)
