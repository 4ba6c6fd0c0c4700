"""Liveness and what the process is running with."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import EncoderDep, SettingsDep, StoreDep

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
