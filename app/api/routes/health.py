"""Liveness (what the process is running with), readiness (whether the store and the model can
serve) and the Prometheus scrape."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from app.api.deps import EncoderDep, GenerationDep, SettingsDep, StoreDep
from app.api.probe import ModelProbe, ModelUnreadyError
from app.api.problems import problem_response
from app.store import StoreError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(
    settings: SettingsDep, encoder: EncoderDep, store: StoreDep, gen: GenerationDep
) -> dict[str, Any]:
    info = store.info()
    return {
        "status": "ok",
        "model": encoder.model_id,
        "device": settings.device,
        "provider": encoder.provider,
        "store": {
            "backend": info.backend,
            "points": info.points,
            "indexed_vectors": info.indexed_vectors,
            "model": info.model_id,
            "collection": gen.collection,
        },
    }


async def get_model_probe(gen: GenerationDep) -> ModelProbe:
    return gen.probe


ProbeDep = Annotated[ModelProbe, Depends(get_model_probe)]


@router.get(
    "/readyz",
    responses={503: {"description": "The store or the model cannot serve searches now."}},
)
def readyz(store: StoreDep, probe: ProbeDep, encoder: EncoderDep) -> JSONResponse:
    """Whether searches can be answered now: the store's files readable and a collection
    there, and the model embedding a probe text and image.

    ``/healthz`` says the process is up (restart it if that fails); ``/readyz`` says whether to
    send it traffic. It is asked afresh each time (the model's success is reused for 30 s), so
    it turns ready again by itself once the store is back, with no restart.
    """
    try:
        store.probe()
        probe.check()
    except (StoreError, ModelUnreadyError) as exc:
        return problem_response(503, str(exc), headers={"Retry-After": "5"})
    return JSONResponse(
        content={"status": "ready", "points": store.info().points, "model": encoder.model_id}
    )


_EXPOSITION = {"schema": {"type": "string"}}


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus metrics: the text format, or OpenMetrics when the "
            "Accept header asks for it.",
            "content": {"text/plain": _EXPOSITION, "application/openmetrics-text": _EXPOSITION},
        }
    },
)
def metrics(request: Request) -> Response:
    """The server's metrics, for Prometheus to scrape (families listed in the README)."""
    body, content_type = request.app.state.metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)
