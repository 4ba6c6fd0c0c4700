"""ASGI middleware that guards every request: body size, concurrency, security headers.

Pure ASGI (not ``BaseHTTPMiddleware``): a body limit has to see the bytes as they arrive,
before Starlette's form parser spools them to memory or disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from http import HTTPStatus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import PROBLEM_JSON

# Sent on every response: no MIME sniffing of our JSON or images into something executable,
# no URLs (with their queries: what a shopper typed) leaked to other sites, no framing.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)


async def send_problem(
    send: Send, status: int, detail: str, headers: Mapping[str, str] | None = None
) -> None:
    """A problem+json response, written straight to ASGI (for middleware outside FastAPI)."""
    body = json.dumps(
        {
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
        }
    ).encode()
    raw = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` once the body passes the limit."""


class BodyLimitMiddleware:
    """413 for a body over its route's limit: from ``Content-Length`` before reading anything,
    and while streaming (a missing or lying header), before the app has buffered it.

    ``limits`` maps (method, path) to a limit in bytes; other requests get ``default``.
    """

    def __init__(
        self, app: ASGIApp, default: int, limits: Mapping[tuple[str, str], tuple[int, str]]
    ) -> None:
        self.app = app
        self.default = default
        self.limits = dict(limits)

    def _limit(self, scope: Scope) -> tuple[int, str]:
        key = (scope["method"], scope["path"].rstrip("/") or "/")
        return self.limits.get(key, (self.default, "SNAPSHOP_MAX_BODY_KB"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit, setting = self._limit(scope)
        detail = (
            f"the request body is over {_size(limit)} (the limit for this route; {setting}); "
            "send a smaller one"
        )
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await send_problem(send, 413, detail)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _BodyTooLarge:
            if started:  # the app answered before reading it all; nothing more to say
                return
            await send_problem(send, 413, detail)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MB" if n >= 1024 * 1024 else f"{n / 1024:g} KB"


class ConcurrencyLimitMiddleware:
    """503 + ``Retry-After`` at once when ``limit`` requests are in flight: a full server says
    so instead of queueing work until every client times out. ``exempt`` paths (health) are
    always served, so an orchestrator can tell busy from dead."""

    def __init__(
        self, app: ASGIApp, limit: int, retry_after_s: int = 1, exempt: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = str(retry_after_s)
        self.exempt = frozenset(exempt)
        self.in_flight = 0  # one event loop: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await send_problem(
                send,
                503,
                f"the server is handling its limit of {self.limit} requests; retry shortly",
                {"Retry-After": self.retry_after},
            )
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class SecurityHeadersMiddleware:
    """``SECURITY_HEADERS`` on every HTTP response (a route's own value wins)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
