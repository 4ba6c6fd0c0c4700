"""ASGI middleware around every request: request ids, logs and metrics; body size, concurrency,
security headers.

Pure ASGI (not ``BaseHTTPMiddleware``): a body limit has to see the bytes as they arrive,
before Starlette's form parser spools them to memory or disk.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import PROBLEM_JSON, REQUEST_ID_SCOPE
from app.observability.logs import (
    ACCESS_LOGGER,
    bind_request_id,
    current_request_id,
    request_id_from,
    unbind_request_id,
)
from app.observability.metrics import Metrics

access_log = logging.getLogger(ACCESS_LOGGER)

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
    problem: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    request_id = current_request_id()
    if request_id is not None:
        problem["request_id"] = request_id
    body = json.dumps(problem).encode()
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


UNMATCHED = "unmatched"  # the route label of a request no route matches (a 404)
REQUEST_ID = b"x-request-id"
# Probes and scrapes come every few seconds: their successes are logged at DEBUG, not INFO.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def route_template(scope: Scope, templates: Sequence[tuple[re.Pattern[str], str]] = ()) -> str:
    """The template of the route that handled (or would handle) this request, such as
    ``/v1/products/{product_id}``: a bounded metric label, unlike the path itself.

    A request a middleware answered (413, 503) was never routed: ``templates`` (compiled
    route templates) tell which route it was for.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(template, str) and template:
        return template
    path = scope.get("path", "")
    for pattern, candidate in templates:
        if pattern.fullmatch(path):
            return candidate
    return UNMATCHED


def compile_templates(templates: Iterable[str]) -> list[tuple[re.Pattern[str], str]]:
    """Matchers for route templates, those with fewer parameters first (``/v1/x/import``
    before ``/v1/x/{id}``)."""
    ordered = sorted(set(templates), key=lambda t: (t.count("{"), t))
    return [(compile_path(t)[0], t) for t in ordered]


class RequestContextMiddleware:
    """The outermost layer: a request id for every request (a sane incoming ``X-Request-ID``
    is kept, else a new one), returned in ``X-Request-ID`` on every response (the 413s and
    503s of the middleware inside included); one access log line; the HTTP metrics.

    The id is in a context variable while the request runs (every log line of the request
    carries it) and in the scope, for the 500 handler that runs outside this middleware.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        templates: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._templates_of = templates
        self._templates: list[tuple[re.Pattern[str], str]] | None = None

    def _route(self, scope: Scope) -> str:
        if self._templates is None and scope.get("route") is None:
            # read once, at the first unrouted request: every route is registered by then
            self._templates = compile_templates(self._templates_of())
        return route_template(scope, self._templates or ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID)
        request_id = request_id_from(incoming.decode("latin-1") if incoming else None)
        scope[REQUEST_ID_SCOPE] = request_id
        token = bind_request_id(request_id)
        status: int | None = None
        started = time.perf_counter()

        async def with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID]
                headers.append((REQUEST_ID, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, with_id)
        finally:
            seconds = time.perf_counter() - started
            self.metrics.in_flight.dec()
            # no response yet: the app raised, and the server error handler answers 500
            answered = status if status is not None else 500
            route = self._route(scope)
            self.metrics.request(scope["method"], route, answered, seconds)
            self._log(scope, route, answered, seconds, request_id)
            unbind_request_id(token)

    def _log(self, scope: Scope, route: str, status: int, seconds: float, request_id: str) -> None:
        # the raw path: still percent-encoded, so a %0A in it cannot forge a log line
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if isinstance(raw, bytes) else scope["path"]
        quiet = scope["path"] in QUIET_PATHS and status < 400
        ms = round(seconds * 1000.0, 3)
        client = scope.get("client")
        access_log.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s %s %d %.1f ms (request %s)",
            scope["method"],
            path,
            status,
            ms,
            request_id,
            extra={
                "request_id": request_id,
                "method": scope["method"],
                "path": path,
                "route": route,
                "status": status,
                "duration_ms": ms,
                "client": client[0] if client else None,
            },
        )
