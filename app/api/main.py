"""The FastAPI application: built from ``Settings``, owns the encoder and the store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.api.announce import remove_server_file, write_server_file
from app.api.routes import (
    admin,
    evaluation,
    health,
    images,
    judgements,
    pages,
    products,
    profiles,
    search,
)
from app.api.sync import SyncJobs
from app.api.thumbnails import Thumbnails
from app.components import load_encoder, open_components, open_judgements, open_querysets
from app.embedding import Encoder
from app.evaluation.judgements import JudgementError
from app.search.errors import NotFoundError, QueryError
from app.settings import Settings
from app.store import StoreError

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, encoder: Encoder | None = None, announce: str | None = None
) -> FastAPI:
    """The app; ``encoder`` lets a caller that already loaded the model hand it over.

    ``announce``: the URL this server answers on, written to ``<data-dir>/server.json`` while
    it runs, so that ``snapshop ingest`` on the same data dir hands its sync to this server.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal encoder
        # Kept across restarts of the lifespan (a test client opened twice): loaded once.
        encoder = encoder or load_encoder(settings)
        with (
            open_components(settings, encoder) as parts,
            closing(open_judgements(settings)) as marks,
            closing(open_querysets(settings)) as sets,
        ):
            app.state.settings = settings
            app.state.encoder = parts.encoder
            app.state.store = parts.store
            app.state.profiles = parts.profiles
            app.state.service = parts.service
            app.state.judgements = marks
            app.state.querysets = sets
            app.state.thumbnails = Thumbnails(settings.thumbs_dir)
            app.state.sync = SyncJobs(
                parts.store, parts.encoder, settings.data_dir, settings.batch_size
            )
            if announce is not None:
                write_server_file(settings.data_dir, announce)
            log.info("serving model %s on %s", encoder.model_id, encoder.provider)
            try:
                yield
            finally:
                if announce is not None:
                    remove_server_file(settings.data_dir)
                # Before the store closes: a running sync stops at its next batch.
                app.state.sync.close()

    app = FastAPI(
        title="snapshop",
        version="0.1.0",
        description="Hybrid visual search for shops: photo and text queries over a catalog.",
        lifespan=lifespan,
    )

    @app.exception_handler(QueryError)
    async def _query_error(_: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(JudgementError)
    async def _judgement_error(_: Request, exc: JudgementError) -> JSONResponse:
        content: dict[str, object] = {"detail": str(exc)}
        if exc.problems:
            content["problems"] = exc.problems  # one "source:LINE: reason" per bad CSV row
        return JSONResponse(status_code=422, content=content)

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    app.include_router(search.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(products.router)
    app.include_router(profiles.router)
    app.include_router(judgements.router)
    app.include_router(evaluation.router)
    app.include_router(images.router)
    pages.add_pages(app, settings.frontend_dir)
    return app
