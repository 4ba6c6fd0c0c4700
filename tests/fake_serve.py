"""``python -m tests.fake_serve --data-dir DIR serve --port N``: the real app under a real
uvicorn, with the fake encoder (tests/fakes.py) instead of a model bundle.

Takes the arguments ``tests.helpers.running_server`` appends, so the tests that need a real
server process (soak, SIGKILL, the ingest hand-off) run it without exporting a model. It
announces itself in ``<data-dir>/server.json`` as ``snapshop serve`` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from app.api.announce import local_url
from app.api.main import create_app
from app.observability.logs import log_config
from app.settings import Settings
from tests.fakes import FakeEncoder


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--access-log", action="store_true", help="One log line per request.")
    args = parser.parse_args(argv)
    settings = Settings(data_dir=args.data_dir)  # and SNAPSHOP_* from the environment
    app = create_app(
        settings,
        encoder=FakeEncoder(),  # type: ignore[arg-type]
        announce=local_url("127.0.0.1", args.port),
    )
    # Access lines off unless asked for: under a soak they would only fill the log file.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_config=log_config(settings.log_format, access_log=args.access_log),
        access_log=False,
    )


def fake_serve_cmd(data_dir: Path) -> list[str]:
    """The command ``running_server`` starts (it appends ``serve --port N``)."""
    return [sys.executable, "-m", "tests.fake_serve", "--data-dir", str(data_dir)]


if __name__ == "__main__":
    main(sys.argv[1:])
