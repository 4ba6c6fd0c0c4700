"""Logs: request ids, one line per request, and a JSON format for log collectors.

``SNAPSHOP_LOG_FORMAT=text`` (the default, for a terminal) keeps the CLI's human format;
``json`` writes one JSON object per line (what Loki, Elasticsearch or CloudWatch ingest). Each
line of a request's handling carries its ``request_id``, the id its response returns in
``X-Request-ID``.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER = "snapshop.access"
REQUEST_ID_HEADER = "X-Request-ID"
# An id a client or proxy sends is kept when it is this tame: it ends up in logs and headers,
# so no spaces, quotes, control characters or unbounded length (log and header injection).
_SANE_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")

_request_id: ContextVar[str | None] = ContextVar("snapshop_request_id", default=None)


def request_id_from(header: str | None) -> str:
    """The incoming id when it is sane, else a new one (32 hex digits)."""
    if header is not None and _SANE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request being handled in this context (None outside a request)."""
    return _request_id.get()


def bind_request_id(value: str | None) -> Token[str | None]:
    """Make ``value`` the current request id; returns the token ``unbind_request_id`` takes."""
    return _request_id.set(value)


def unbind_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record that has none (None outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        return True


# Attributes every LogRecord has; anything else on a record came from ``extra=`` (except
# uvicorn's ``color_message``, the message again with terminal colour codes).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, request_id, the record's
    ``extra`` fields, and ``exc`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def log_config(fmt: LogFormat, *, access_log: bool = True) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for a server, also handed to uvicorn (``log_config``)
    so its own lines share the format.

    snapshop's loggers and uvicorn's log at INFO; everything else at WARNING (a client
    library's per-call INFO lines stay out). uvicorn's access lines are off: the request
    middleware writes one line per request itself, with the route, duration and request id.
    """
    formatter: dict[str, Any] = {"()": JsonFormatter} if fmt == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"snapshop": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "snapshop",
                "filters": ["request_id"],
            }
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            "app": {"level": "INFO"},
            "ingestion": {"level": "INFO"},
            "snapshop": {"level": "INFO"},
            ACCESS_LOGGER: {"level": "INFO" if access_log else "WARNING"},
            "uvicorn": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }
