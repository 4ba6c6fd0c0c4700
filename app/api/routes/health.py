"""Liveness (what the process is running with) and readiness (whether the store can serve)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import EncoderDep, SettingsDep, StoreDep
from app.store import StoreError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(settings: SettingsDep, encoder: EncoderDep, store: StoreDep) -> dict[str, Any]:
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
        },
    }


@router.get("/readyz", responses={503: {"description": "the store cannot serve searches now"}})
def readyz(store: StoreDep) -> JSONResponse:
    """Whether searches can be answered now: the store's files readable and a collection there.

    ``/healthz`` says the process is up (restart it if that fails); ``/readyz`` says whether to
    send it traffic. It is asked afresh each time, so it turns ready again by itself once the
    store is back, with no restart.
    """
    try:
        store.probe()
    except StoreError as exc:
        return JSONResponse(status_code=503, content={"status": "unavailable", "detail": str(exc)})
    return JSONResponse(content={"status": "ready", "points": store.info().points})
