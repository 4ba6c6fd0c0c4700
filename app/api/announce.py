"""``<data-dir>/server.json``: which server holds this data dir, so ``snapshop ingest`` can find
it and hand its sync over instead of failing on the store lock.

It names a URL and a process, nothing secret: the CLI still authenticates with the admin key.
A file left by a killed server is recognised by its dead process and ignored.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.files import write_text_atomic

SERVER_FILE = "server.json"


@dataclass(frozen=True)
class ServerInfo:
    url: str
    pid: int
    host: str
    started_at: str

    def alive(self) -> bool:
        """Whether the process that wrote the file still runs (only knowable on its host)."""
        if self.host != socket.gethostname():
            return True  # a shared volume: assume it does; the HTTP call will tell
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else
            return True
        return True


def local_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server bound to ``host``."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def write_server_file(data_dir: Path, url: str) -> ServerInfo:
    info = ServerInfo(
        url=url,
        pid=os.getpid(),
        host=socket.gethostname(),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(data_dir / SERVER_FILE, json.dumps(asdict(info), indent=2))
    return info


def read_server_file(data_dir: Path) -> ServerInfo | None:
    """The server announced in ``data_dir``, or None (no file, unreadable, or its process gone)."""
    try:
        raw = json.loads((data_dir / SERVER_FILE).read_text())
        info = ServerInfo(
            url=str(raw["url"]),
            pid=int(raw["pid"]),
            host=str(raw["host"]),
            started_at=str(raw["started_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if info.alive() else None


def remove_server_file(data_dir: Path) -> None:
    """Remove the file if this process wrote it (a newer server's file is left alone)."""
    path = data_dir / SERVER_FILE
    try:
        if int(json.loads(path.read_text())["pid"]) == os.getpid():
            path.unlink()
    except (OSError, ValueError, KeyError, TypeError):
        pass
