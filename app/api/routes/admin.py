"""Operator endpoints (admin key required): indexer health, live catalog syncs, collections
and model swaps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.deps import ADMIN_RESPONSES, AdminDep, LiveDep, SettingsDep, StoreDep, SyncDep
from app.api.sync import SyncBusyError
from app.components import SetupError
from app.store import StoreError, StoreUnavailableError
from app.store.errors import NoSuchCollectionError
from ingestion.catalog import CatalogError, products_file
from ingestion.runs import indexer_health, list_runs
from ingestion.sync import SyncOptions

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


class SyncBody(BaseModel):
    """A sync request: the catalog folder (as the server sees it) and ``snapshop ingest``'s
    options that change what a run does."""

    model_config = ConfigDict(extra="forbid")

    catalog: str = Field(description="Absolute path of the catalog folder on the server.")
    prune: bool = Field(default=False, description="Delete products no longer in the catalog.")
    replace_model: bool = Field(
        default=False, description="If the store holds another model's vectors, re-embed."
    )
    build_index: bool = Field(default=True, description="Build the HNSW index at the end.")
    batch_size: int | None = Field(default=None, ge=1, le=1024)
    workers: int | None = Field(default=None, ge=1, le=64)
    new_collection: bool = Field(
        default=False,
        description="Build the collection of `model` beside the live one (for a model swap) "
        "instead of syncing the live collection.",
    )
    model: str | None = Field(
        default=None,
        description="With new_collection: absolute path of the model bundle on the server.",
    )

    @model_validator(mode="after")
    def _model_with_new_collection(self) -> SyncBody:
        if self.new_collection and not self.model:
            raise ValueError("new_collection needs model: the bundle to build the collection of")
        if self.model and not self.new_collection:
            raise ValueError("model is only for new_collection (the live one keeps its model)")
        if self.new_collection and self.replace_model:
            raise ValueError("new_collection keeps the live collection: no replace_model with it")
        return self


def _catalog_dir(given: str) -> Path:
    path = Path(given)
    # A relative path would be resolved against the server's working directory, which the
    # caller cannot see; `snapshop ingest` sends an absolute one.
    if not path.is_absolute():
        raise HTTPException(422, detail=f"catalog must be an absolute path, got {given!r}")
    if not path.is_dir():
        raise HTTPException(422, detail=f"catalog folder not found on the server: {path}")
    try:
        products_file(path)
    except CatalogError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    return path


@router.post(
    "/sync",
    status_code=202,
    responses={
        409: {"description": "A sync is already running."},
        422: {"description": "The catalog folder is not absolute, missing, or has no products."},
    },
)
def start_sync(body: SyncBody, jobs: SyncDep) -> dict[str, Any]:
    """Sync the store with a catalog in the background while searches go on; 409 while one
    runs. Poll ``GET /v1/admin/sync/{job}`` for progress and the summary."""
    catalog = _catalog_dir(body.catalog)
    if body.model is not None:
        bundle = Path(body.model)
        if not bundle.is_absolute() or not bundle.is_dir():
            raise HTTPException(
                422,
                detail=f"model must be the absolute path of a bundle folder, got {body.model!r}",
            )
    options = SyncOptions(
        prune=body.prune,
        replace_model=body.replace_model,
        build_index=body.build_index,
        batch_size=body.batch_size,
        workers=body.workers,
        new_collection=body.new_collection,
        model=body.model,
    )
    try:
        job = jobs.start(catalog, options)
    except SyncBusyError as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    return job.to_json()


@router.get("/sync/{job}", responses={404: {"description": "No such sync job."}})
def sync_status(job: str, jobs: SyncDep) -> dict[str, Any]:
    """A sync job: ``state`` (queued, running, done, failed, cancelled), images done of the
    total, and once done the run's counts and summary (``result``) or its ``error``."""
    found = jobs.get(job)
    if found is None:
        raise HTTPException(404, detail=f"no sync job {job!r} (the server keeps its last 50)")
    return found.to_json()


# -- collections: one per model; a swap makes another one live ---------------------------------


@router.get("/collections")
def list_collections(live: LiveDep) -> dict[str, Any]:
    """The store's collections, the live one first: model, points, when it was made."""
    rows = live.list()
    return {
        "live": next((c.name for c in rows if c.live), None),
        "collections": [c.to_json() for c in rows],
    }


class SwapBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str = Field(description="The collection to make live (see GET collections).")


_REFUSED: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such collection."},
    409: {
        "description": "Refused: a sync is running; the collection is live, in use, empty, or "
        "its model bundle cannot be found."
    },
}


def _refused(exc: StoreError) -> HTTPException:
    if isinstance(exc, NoSuchCollectionError):
        return HTTPException(404, detail=str(exc))
    if isinstance(exc, StoreUnavailableError):  # the server is down or slow: try again
        return HTTPException(503, detail=str(exc), headers={"Retry-After": "5"})
    # refused, or another process holds the collection (an embedded shard), or it is unreadable
    return HTTPException(409, detail=str(exc))


@router.post(
    "/collections/swap",
    responses={**_REFUSED, 503: {"description": "The store or the model cannot be read now."}},
)
def swap_collection(body: SwapBody, live: LiveDep) -> dict[str, Any]:
    """Make another collection live, with its model: searches answered before the swap use
    the old collection and model, those after it the new ones, and none fails meanwhile.
    The old collection is kept (swap back to undo) until it is dropped."""
    try:
        gen, previous = live.swap(body.collection)
    except StoreError as exc:
        raise _refused(exc) from exc
    except SetupError as exc:  # the collection's model bundle cannot be found or loaded
        raise HTTPException(409, detail=str(exc)) from exc
    return {"live": gen.collection, "model": gen.encoder.model_id, "previous": previous}


@router.delete("/collections/{name}", responses=_REFUSED)
def drop_collection(name: str, live: LiveDep) -> dict[str, Any]:
    """Delete a collection that is not live (what a swap left behind)."""
    try:
        live.drop(name)
    except StoreError as exc:
        raise _refused(exc) from exc
    return {"dropped": name}
