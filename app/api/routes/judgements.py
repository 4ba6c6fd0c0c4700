"""``/v1/judgements`` (admin key): people's relevant / not-relevant marks for (query, product).

``snapshop eval --judgements`` counts them as known answers. Export and import move the marks
between data directories as CSV.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from app.api.deps import ADMIN_RESPONSES, AdminDep, JudgementsDep, ServiceDep
from app.evaluation.judgements import (
    CSV_COLUMNS,
    IMAGE_PREFIX,
    MAX_JUDGE_CHARS,
    MAX_NOTE_CHARS,
    MAX_PRODUCT_ID_CHARS,
    MAX_TEXT_CHARS,
    Judgement,
    check_key,
    text_key,
)

router = APIRouter(
    prefix="/v1/judgements",
    tags=["judgements"],
    dependencies=[AdminDep],
    responses=ADMIN_RESPONSES,
)

# An import is parsed in memory; this bounds what one request can make the server hold.
MAX_IMPORT_BYTES = 20 * 1024 * 1024
IMPORT_SOURCE = "upload"
# SQLite's OFFSET is a 64-bit integer: a larger one was a 500, not a 422
MAX_LIST_OFFSET = 1_000_000_000


class JudgementBody(BaseModel):
    """One mark. The query is named by exactly one of ``query``, ``image_sha256``, ``query_key``."""

    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(
        default=None, max_length=MAX_TEXT_CHARS, description="The typed query text."
    )
    image_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="sha256 (hex) of the query photo's bytes.",
    )
    query_key: str | None = Field(
        default=None,
        max_length=MAX_TEXT_CHARS + 10,
        description="A key as listed/exported: text:<query> or image:<sha256>.",
    )
    product_id: str = Field(min_length=1, max_length=MAX_PRODUCT_ID_CHARS)
    relevant: StrictBool
    judge: str = Field(min_length=1, max_length=MAX_JUDGE_CHARS, description="Who marked it.")
    note: str = Field(default="", max_length=MAX_NOTE_CHARS)

    @model_validator(mode="after")
    def _one_query(self) -> JudgementBody:
        given = [f for f in ("query", "image_sha256", "query_key") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of query, image_sha256 or query_key"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def key(self) -> str:
        if self.query is not None:
            try:
                return text_key(self.query)
            except ValueError as exc:
                raise HTTPException(422, f"query: {exc}") from exc
        if self.image_sha256 is not None:
            return IMAGE_PREFIX + self.image_sha256.lower()
        assert self.query_key is not None  # the validator saw to it
        return check_key(self.query_key)


class JudgementOut(BaseModel):
    query_key: str
    product_id: str
    relevant: bool
    judge: str
    note: str
    updated_at: str


def _out(mark: Judgement) -> dict[str, Any]:
    return {
        "query_key": mark.query_key,
        "product_id": mark.product_id,
        "relevant": mark.relevant,
        "judge": mark.judge,
        "note": mark.note,
        "updated_at": mark.updated_at,
    }


@router.post(
    "",
    status_code=201,
    response_model=JudgementOut,
    responses={404: {"description": "The catalog has no such product."}},
)
async def record_judgement(
    body: JudgementBody, judgements: JudgementsDep, service: ServiceDep
) -> Any:
    """Record ``judge``'s mark for (query, product); it replaces their earlier mark."""
    key = body.key()
    # A mark for a product the catalog does not hold could never count: NotFoundError -> 404.
    await run_in_threadpool(service.product, body.product_id.strip())
    mark = await run_in_threadpool(
        judgements.record, key, body.product_id, body.relevant, body.judge, body.note
    )
    return _out(mark)


@router.get("")
async def list_judgements(
    judgements: JudgementsDep,
    query_key: Annotated[str | None, Query(description="Only this query key.")] = None,
    product_id: Annotated[str | None, Query(description="Only this product.")] = None,
    judge: Annotated[str | None, Query(description="Only this judge's marks.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_LIST_OFFSET)] = 0,
    query: Annotated[
        str | None,
        Query(max_length=MAX_TEXT_CHARS, description="Only this typed query (its text key)."),
    ] = None,
) -> dict[str, Any]:
    """Marks matching every filter given, newest first, with the total that match."""
    if query is not None:
        if query_key is not None:
            raise HTTPException(422, "give query or query_key, not both")
        try:
            query_key = text_key(query)
        except ValueError as exc:
            raise HTTPException(422, f"query: {exc}") from exc
    total = await run_in_threadpool(judgements.count, query_key, product_id, judge)
    marks = await run_in_threadpool(judgements.find, query_key, product_id, judge, limit, offset)
    return {"total": total, "judgements": [_out(m) for m in marks]}


@router.delete("", status_code=204, responses={404: {"description": "No such mark."}})
async def delete_judgement(
    judgements: JudgementsDep,
    query_key: Annotated[str, Query()],
    product_id: Annotated[str, Query()],
    judge: Annotated[str, Query()],
) -> Response:
    """Remove one judge's mark for (query, product)."""
    if not await run_in_threadpool(judgements.delete, query_key, product_id, judge):
        raise HTTPException(404, f"no mark by {judge!r} for {product_id!r} on that query")
    return Response(status_code=204)


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": ",".join(CSV_COLUMNS)}},
)
async def export_judgements(judgements: JudgementsDep) -> Response:
    """Every mark as CSV; ``POST /v1/judgements/import`` takes the file back."""
    buffer = io.StringIO()
    await run_in_threadpool(judgements.export_csv, buffer)
    return Response(
        content=buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": "attachment; filename=judgements.csv"},
    )


async def _read_capped(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it passes ``MAX_IMPORT_BYTES``."""
    cap = MAX_IMPORT_BYTES
    too_big = HTTPException(413, f"the CSV is over {cap / 1024 / 1024:g} MB; split it")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_big
    body = bytearray()
    # Streamed, so a lying or missing Content-Length cannot make the server buffer more.
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise too_big
    return bytes(body)


@router.post(
    "/import",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": f"CSV with header {','.join(CSV_COLUMNS)} (note, updated_at optional).",
        }
    },
    responses={
        415: {"description": "A form upload instead of the CSV itself."},
        422: {"description": "Not UTF-8, or bad rows (listed in `problems`)."},
    },
)
async def import_judgements(request: Request, judgements: JudgementsDep) -> dict[str, int]:
    """Upsert the marks of a CSV body (all or nothing: a bad row imports none, 422 lists why)."""
    if request.headers.get("content-type", "").startswith("multipart/"):
        raise HTTPException(
            415, "send the CSV itself as the body (Content-Type: text/csv), not a form upload"
        )
    data = await _read_capped(request)
    try:
        text = data.decode("utf-8-sig")  # -sig: a spreadsheet's BOM is not part of the header
    except UnicodeDecodeError as exc:
        raise HTTPException(422, f"the CSV is not UTF-8 (byte {exc.start})") from exc
    imported = await run_in_threadpool(
        judgements.import_csv, io.StringIO(text, newline=""), IMPORT_SOURCE
    )
    return {"imported": imported}
