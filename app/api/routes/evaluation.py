"""``/v1/eval``: run the evaluation on a stored query set (admin key; used by the PM console)."""

from __future__ import annotations

import threading
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, HTTPException, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import ADMIN_RESPONSES, AdminDep, JudgementsDep, QuerySetsDep, ServiceDep
from app.evaluation.querysets import QuerySetError
from app.evaluation.search import evaluate_search
from app.profiles import FusionSpec
from app.sqlite import MAX_INTEGER

router = APIRouter(
    prefix="/v1/eval", tags=["evaluation"], dependencies=[AdminDep], responses=ADMIN_RESPONSES
)
_NO_SET: dict[int | str, dict[str, Any]] = {404: {"description": "No such query set (or query)."}}

# An evaluation runs every query several times (fused, then each leg alone); two at once would
# only halve each other's speed and the shoppers' with them, so a second one is turned away.
_running = threading.Lock()
SetName = Annotated[str, PathParam(min_length=1, max_length=64, description="Query set name.")]


class EvalRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query_set: str = Field(min_length=1, max_length=64, description="A stored query set's name.")
    profile: str | None = Field(default=None, description="Fusion profile (default: default).")
    judgements: bool = Field(default=False, description="Refine answers with human judgements.")
    fusion: FusionSpec | None = Field(
        default=None,
        description="An unsaved blend to grade beside the profile's (reported under 'variants').",
    )
    worst: int = Field(
        default=0,
        ge=0,
        le=100,
        description="List this many lowest-scoring queries of each blend ('worst').",
    )


@router.get("/query-sets")
async def list_query_sets(sets: QuerySetsDep) -> dict[str, Any]:
    found = await run_in_threadpool(sets.summaries)
    return {"query_sets": [vars(s) for s in found]}


@router.get("/query-sets/{name}/queries", responses=_NO_SET)
async def query_set_queries(name: SetName, sets: QuerySetsDep) -> dict[str, Any]:
    """The set's queries, in order: text, judgement key, answers, and a URL for each photo."""
    try:
        queries = await run_in_threadpool(sets.load, name)
    except QuerySetError as exc:
        raise HTTPException(404, str(exc)) from exc
    base = f"/v1/eval/query-sets/{quote(name, safe='')}/photos"
    return {
        "query_set": name,
        "queries": [
            {
                "query_id": q.query_id,
                "kind": q.kind,
                "label": q.label,
                "text": q.text,
                "query_key": q.key,
                "query_type": q.query_type,
                "category": q.category,
                "relevant": sorted(q.relevant),
                "image_url": f"{base}/{i}" if q.kind == "image" else None,
            }
            for i, q in enumerate(queries)
        ],
    }


@router.get(
    "/query-sets/{name}/photos/{index}",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}, "description": "The photo as stored."}, **_NO_SET},
)
async def query_set_photo(
    name: SetName, index: Annotated[int, PathParam(ge=0, le=MAX_INTEGER)], sets: QuerySetsDep
) -> Response:
    """The photo of the set's ``index``-th query (from 0), byte for byte as it was stored."""
    try:
        data = await run_in_threadpool(sets.photo, name, index)
    except QuerySetError as exc:
        raise HTTPException(404, str(exc)) from exc
    return Response(data, media_type=_image_type(data), headers={"Cache-Control": "private"})


def _image_type(data: bytes) -> str:
    for magic, kind in ((b"\xff\xd8", "jpeg"), (b"\x89PNG", "png"), (b"GIF8", "gif")):
        if data.startswith(magic):
            return f"image/{kind}"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


@router.post(
    "/run",
    responses={
        **_NO_SET,
        409: {"description": "An evaluation is already running."},
        422: {"description": "A bad field or an unknown profile."},
    },
)
def run_eval(
    body: Annotated[EvalRunBody, Body()],
    service: ServiceDep,
    sets: QuerySetsDep,
    marks: JudgementsDep,
) -> dict[str, Any]:
    """The ``snapshop eval --json`` document for ``profile`` on ``query_set``.

    A plain ``def``: FastAPI runs it in its thread pool, so the event loop keeps serving
    searches while the evaluation runs.
    """
    try:
        queries = sets.load(body.query_set)
    except QuerySetError as exc:
        raise HTTPException(404, str(exc)) from exc
    if not _running.acquire(blocking=False):
        raise HTTPException(409, "an evaluation is already running; try again when it ends")
    try:
        service.profile(body.profile)  # an unknown profile is a 422 before any work
        qrels = marks.qrels() if body.judgements else None
        result = evaluate_search(
            service,
            queries,
            fusions={"fusion": body.fusion} if body.fusion is not None else None,
            profile=body.profile,
            judgements=qrels,
            worst=body.worst,
        )
    finally:
        _running.release()
    return {"query_set": body.query_set, **result}
