"""``/v1/eval``: run the evaluation on a stored query set (admin key; used by the PM console)."""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import AdminDep, JudgementsDep, QuerySetsDep, ServiceDep
from app.evaluation.querysets import QuerySetError
from app.evaluation.search import evaluate_search
from app.profiles import FusionSpec

router = APIRouter(prefix="/v1/eval", tags=["evaluation"], dependencies=[AdminDep])

# An evaluation runs every query several times (fused, then each leg alone); two at once would
# only halve each other's speed and the shoppers' with them, so a second one is turned away.
_running = threading.Lock()


class EvalRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query_set: str = Field(min_length=1, max_length=64, description="A stored query set's name.")
    profile: str | None = Field(default=None, description="Fusion profile (default: default).")
    judgements: bool = Field(default=False, description="Refine answers with human judgements.")
    fusion: FusionSpec | None = Field(
        default=None,
        description="An unsaved blend to grade beside the profile's (reported under 'variants').",
    )


@router.get("/query-sets")
async def list_query_sets(sets: QuerySetsDep) -> dict[str, Any]:
    found = await run_in_threadpool(sets.list)
    return {"query_sets": [vars(s) for s in found]}


@router.post("/run")
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
        )
    finally:
        _running.release()
    return {"query_set": body.query_set, **result}
