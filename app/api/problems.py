"""One error model for every 4xx/5xx: RFC 9457 problem details (``application/problem+json``).

Every error the API answers, whoever raised it (a route, a dependency, FastAPI's request
validation, a middleware, Starlette's routing), has the same shape: ``type``, ``title``,
``status``, ``detail`` (one line a person can act on), plus ``errors`` (field-level
validation) or ``problems`` (bad CSV rows) where they apply. ``install`` wires the handlers
and declares the shape for every error status in the OpenAPI document.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.evaluation.judgements import JudgementError
from app.observability.logs import REQUEST_ID_HEADER, current_request_id
from app.search.errors import NotFoundError, PayloadTooLargeError, QueryError
from app.search.schemas import SearchBody
from app.store import StoreError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Where the request middleware leaves the request id for handlers that run outside it (500s).
REQUEST_ID_SCOPE = "snapshop.request_id"
PROBLEM_REF = "#/components/schemas/Problem"
# Models referenced by hand-written request schemas (openapi_extra), registered as components
# so that their ``$ref``s resolve inside the OpenAPI document.
EXTRA_SCHEMAS: tuple[type[BaseModel], ...] = (SearchBody,)


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: the part of the request, then the field.")
    msg: str = Field(description="What is wrong with it.")
    type: str = Field(description="A machine-readable error kind (pydantic's).")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(default="about:blank", description="A URI naming the problem kind.")
    title: str = Field(description="The HTTP status phrase.")
    status: int = Field(description="The HTTP status code, repeated.")
    detail: str = Field(description="What went wrong and how to fix it, for a person.")
    errors: list[FieldError] | None = Field(
        default=None, description="Field-level validation errors, when the request was invalid."
    )
    problems: list[str] | None = Field(
        default=None, description="For an import: one 'source:LINE: reason' per bad row."
    )
    request_id: str | None = Field(
        default=None,
        description="This request's id, as in the X-Request-ID header: quote it when reporting "
        "the problem (the server's log lines of the request carry it).",
    )


class ProblemError(HTTPException):
    """An ``HTTPException`` that may carry field-level ``errors`` or CSV row ``problems``."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        problems: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, detail, dict(headers) if headers else None)
        self.errors = [field_error(e) for e in errors] if errors else None
        self.problems = list(problems) if problems else None


def field_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """A pydantic error without ``input`` and ``ctx`` (they may echo huge or odd input)."""
    return {
        "loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
        "msg": str(error.get("msg", "")),
        "type": str(error.get("type", "value_error")),
    }


def reasons(errors: Iterable[Mapping[str, Any]], whole: str = "body") -> str:
    """The errors as one line: ``field: problem; ...`` (``whole`` names the input itself)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())) or whole}: {e.get('msg', '')}" for e in errors
    )


def invalid(exc: ValidationError) -> ProblemError:
    """A 422 for a body or form validated by hand (its locations are relative to the body)."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    return ProblemError(422, reasons(errors), errors=errors)


def problem_response(
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    problems: list[str] | None = None,
    request_id: str | None = None,
) -> JSONResponse:
    """The problem; ``request_id`` defaults to the id of the request being handled."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    if problems:
        body["problems"] = problems
    request_id = request_id or current_request_id()
    if request_id is not None:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install(app: FastAPI) -> None:
    """Problem-details handlers for every error, and the error shape in the OpenAPI document."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such resource: check the path (GET /docs lists the API)"
        elif exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "the body could not be parsed: send UTF-8 JSON, as the schema in /docs shows"
        elif exc.status_code == 405:
            detail = "this path does not accept that method (GET /docs lists the API)"
        return problem_response(
            exc.status_code,
            detail,
            headers=exc.headers,
            errors=getattr(exc, "errors", None),
            problems=getattr(exc, "problems", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [field_error(e) for e in exc.errors()]
        return problem_response(422, reasons(errors, whole="request"), errors=errors)

    @app.exception_handler(QueryError)
    async def _query_error(_: Request, exc: QueryError) -> JSONResponse:
        return problem_response(422, str(exc))

    @app.exception_handler(PayloadTooLargeError)
    async def _too_large(_: Request, exc: PayloadTooLargeError) -> JSONResponse:
        return problem_response(413, str(exc))

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return problem_response(404, str(exc))

    @app.exception_handler(JudgementError)
    async def _judgement_error(_: Request, exc: JudgementError) -> JSONResponse:
        return problem_response(422, str(exc), problems=list(exc.problems) or None)

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return problem_response(503, str(exc), headers={"Retry-After": "30"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Runs outside the request middleware (Starlette's server-error layer): the request
        # id comes from the scope, and the response carries its header itself.
        request_id = request.scope.get(REQUEST_ID_SCOPE)
        # Logged with its traceback; the client learns nothing of the internals.
        log.exception(
            "unhandled error on %s %s",
            request.method,
            request.url.path,
            extra={"request_id": request_id},
        )
        return problem_response(
            500,
            "an unexpected error; it has been logged",
            headers={REQUEST_ID_HEADER: request_id} if request_id else None,
            request_id=request_id,
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# Every operation can answer these (middleware: request limits, load shedding, timeouts).
_EVERY_OPERATION = {
    503: "The server is at its concurrency limit, timed out, or the store is unavailable; "
    "retry after Retry-After seconds.",
}
_WITH_BODY = {
    400: "The body could not be parsed (not UTF-8 JSON, or a broken multipart form).",
    413: "The request body is larger than the server accepts.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "string"},
    }
}
_REQUEST_ID = {
    REQUEST_ID_HEADER: {
        "description": "The request's id: the client's own X-Request-ID when it sent a sane "
        "one (1-128 of A-Z a-z 0-9 . _ : + / = -), else a new one.",
        "required": True,
        "schema": {"type": "string"},
    }
}


def document_problems(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the problem shape for every 4xx/5xx of every operation, and the components
    that hand-written schemas reference."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(Problem, "serialization"), *((m, "validation") for m in EXTRA_SCHEMAS)],
        ref_template="#/components/schemas/{model}",
    )
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            added = dict(_EVERY_OPERATION)
            if "requestBody" in operation:
                added.update(_WITH_BODY)
            for status, description in added.items():
                responses.setdefault(str(status), {"description": description})
            for code, response in responses.items():
                response.setdefault("headers", {}).update(_REQUEST_ID)
                if not code.isdigit() or int(code) < 400:
                    continue
                response["content"] = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
                if int(code) in (429, 503):
                    response["headers"].update(_RETRY_AFTER)
                if response.get("description") in (None, "", "Validation Error"):
                    response["description"] = _title(int(code))
    # FastAPI's own validation error shapes are answered by nobody now.
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return doc
