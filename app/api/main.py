"""The FastAPI application: built from ``Settings``, owns the encoder and the store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.api.routes import admin, health, search
from app.components import build_service, load_encoder, open_store
from app.embedding import Encoder
from app.search.service import QueryError
from app.settings import Settings
from app.store import StoreError

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, encoder: Encoder | None = None) -> FastAPI:
    """The app; ``encoder`` lets a caller that already loaded the model hand it over."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal encoder
        encoder = encoder or load_encoder(settings)
        store = open_store(settings)
        app.state.settings = settings
        app.state.encoder = encoder
        app.state.store = store
        app.state.service = build_service(settings, store, encoder)
        log.info("serving model %s on %s", encoder.model_id, encoder.provider)
        try:
            yield
        finally:
            store.close()

    app = FastAPI(
        title="snapshop",
        version="0.1.0",
        description="Hybrid visual search for shops: photo and text queries over a catalog.",
        lifespan=lifespan,
    )

    @app.exception_handler(QueryError)
    async def _query_error(_: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    app.include_router(search.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    return app
