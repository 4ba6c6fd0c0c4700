"""``python -m tests.fake_serve --data-dir DIR serve --port N``: the real app under a real
uvicorn, with the fake encoder (tests/fakes.py) instead of a model bundle.

Takes the arguments ``tests.helpers.running_server`` appends, so the tests that need a real
server process (soak, SIGKILL, the ingest hand-off, model swaps) run it without exporting a
model. It announces itself in ``<data-dir>/server.json`` as ``snapshop serve`` does.

A fake bundle is a folder holding ``fake.json`` (``{"encoder": "narrow"}``, a key of
``ENCODERS``): ``FakeModels`` finds and loads those where the real app finds and loads bundles,
so a model swap runs the app's own code with fake encoders.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from app.api.announce import local_url
from app.api.main import create_app
from app.api.workers import refuse_workers, run_workers, settings_env
from app.components import Models
from app.embedding import Encoder
from app.observability.logs import log_config
from app.settings import Settings
from tests.fakes import FakeEncoder, InstanceFakeEncoder, NarrowFakeEncoder

ENCODERS: dict[str, type[FakeEncoder]] = {
    "default": FakeEncoder,
    "narrow": NarrowFakeEncoder,
    "instance": InstanceFakeEncoder,
}
FAKE_BUNDLE = "fake.json"


def write_fake_bundle(folder: Path, encoder: str) -> Path:
    """A fake bundle of ``ENCODERS[encoder]`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FAKE_BUNDLE).write_text(json.dumps({"encoder": encoder}))
    return folder


class FakeModels(Models):
    """``Models`` over fake bundles."""

    def _kind(self, bundle: Path) -> type[FakeEncoder] | None:
        try:
            return ENCODERS[json.loads((bundle / FAKE_BUNDLE).read_text())["encoder"]]
        except (OSError, ValueError, KeyError):
            return None

    def model_id_of(self, bundle: Path) -> str | None:
        kind = self._kind(bundle)
        return kind.model_id if kind is not None else None

    def load(self, bundle: Path) -> Encoder:
        kind = self._kind(bundle)
        if kind is None:
            raise FileNotFoundError(f"no fake bundle in {bundle}")
        return kind()  # type: ignore[return-value]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--access-log", action="store_true", help="One log line per request.")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    settings = Settings(data_dir=args.data_dir)  # and SNAPSHOP_* from the environment
    if args.workers > 1:  # as `snapshop serve --workers N` runs them
        reason = refuse_workers(settings, args.workers)
        if reason is not None:
            sys.exit(reason)
        run_workers(
            "tests.fake_serve:app_from_env",
            host="127.0.0.1",
            port=args.port,
            workers=args.workers,
            log_config=log_config(settings.log_format),
            env=settings_env({"data_dir": args.data_dir}),
        )
        return
    app = create_app(
        settings,
        encoder=FakeEncoder(),  # type: ignore[arg-type]
        announce=local_url("127.0.0.1", args.port),
        models=FakeModels(settings),
    )
    # Access lines off unless asked for: under a soak they would only fill the log file.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_config=log_config(settings.log_format, access_log=args.access_log),
        access_log=False,
    )


def app_from_env() -> FastAPI:
    """A worker's app (``--workers``): the environment's settings, the fake encoder."""
    settings = Settings()
    return create_app(settings, encoder=FakeEncoder(), models=FakeModels(settings))  # type: ignore[arg-type]


def fake_serve_cmd(data_dir: Path) -> list[str]:
    """The command ``running_server`` starts (it appends ``serve --port N``)."""
    return [sys.executable, "-m", "tests.fake_serve", "--data-dir", str(data_dir)]


if __name__ == "__main__":
    main(sys.argv[1:])
