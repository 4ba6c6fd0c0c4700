"""Operator endpoints (admin key required): indexer health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from app.api.deps import ADMIN_RESPONSES, AdminDep, SettingsDep, StoreDep
from ingestion.runs import indexer_health, list_runs

router = APIRouter(
    prefix="/v1/admin", tags=["admin"], dependencies=[AdminDep], responses=ADMIN_RESPONSES
)


@router.get("/indexers")
def indexers(
    settings: SettingsDep,
    store: StoreDep,
    limit: int = Query(default=20, ge=1, le=500, description="Recent runs to return."),
) -> dict[str, Any]:
    """Each catalog's indexer: last run, its counts, errors and throughput; the index state."""
    status = store.index_status()
    return {
        "indexers": indexer_health(settings.runs_dir, limit=max(limit, 50)),
        "runs": [r.to_json() for r in list_runs(settings.runs_dir, limit=limit)],
        "index": {
            "state": status.state,
            "indexed_vectors": status.indexed_vectors,
            "vectors": status.vectors,
            "description": status.describe(),
        },
    }
