"""The FastAPI application: built from ``Settings``, owns the encoder and the store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.api import problems
from app.api.announce import remove_server_file, write_server_file
from app.api.middleware import (
    BodyLimitMiddleware,
    ConcurrencyLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from app.api.ratelimit import RateLimit
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
from app.api.routes.judgements import MAX_IMPORT_BYTES
from app.api.serving import Live
from app.api.sync import SyncJobs
from app.api.thumbnails import Thumbnails
from app.components import (
    Models,
    load_encoder,
    open_collections,
    open_judgements,
    open_profiles,
    open_querysets,
)
from app.embedding import Encoder
from app.observability.metrics import Metrics
from app.settings import Settings

log = logging.getLogger(__name__)
# Multipart framing and the search form's text fields, on top of the photo itself.
FORM_OVERHEAD = 64 * 1024


def create_app(
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    announce: str | None = None,
    models: Models | None = None,
) -> FastAPI:
    """The app; ``encoder`` lets a caller that already loaded the model hand it over.

    ``models``: how the model of another collection is found and loaded when it is swapped in
    (default: bundles on disk, ``Models``).

    ``announce``: the URL this server answers on, written to ``<data-dir>/server.json`` while
    it runs, so that ``snapshop ingest`` on the same data dir hands its sync to this server.
    """
    settings = settings or Settings()
    # Its own registry: apps built side by side (tests) never share or clash on families.
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal encoder
        # Kept across restarts of the lifespan (a test client opened twice): loaded once.
        encoder = encoder or load_encoder(settings)
        with (
            closing(open_collections(settings, serving=True)) as collections,
            closing(open_profiles(settings)) as profile_repo,
            closing(open_judgements(settings)) as marks,
            closing(open_querysets(settings)) as sets,
        ):
            live = Live(settings, collections, models or Models(settings), profile_repo, metrics)
            jobs = SyncJobs(live, settings.data_dir, settings.batch_size, metrics)
            live.busy = jobs.running  # a swap or a drop waits for a running sync
            first = live.start(encoder, settings.model_dir)
            app.state.settings = settings
            app.state.live = live
            app.state.profiles = profile_repo
            app.state.judgements = marks
            app.state.querysets = sets
            app.state.thumbnails = Thumbnails(settings.thumbs_dir)
            app.state.sync = jobs
            if announce is not None:
                write_server_file(settings.data_dir, announce)
            log.info("serving model %s on %s", first.encoder.model_id, first.encoder.provider)
            try:
                yield
            finally:
                if announce is not None:
                    remove_server_file(settings.data_dir)
                # Before the store closes: a running sync stops at its next batch.
                jobs.close()
                live.close()
                metrics.watch(None, None)
                metrics.close()

    app = FastAPI(
        title="snapshop",
        version="0.1.0",
        description="Hybrid visual search for shops: photo and text queries over a catalog.",
        lifespan=lifespan,
    )

    app.state.metrics = metrics
    problems.install(app)
    # Added innermost first: the security headers wrap everything, even a 413 or 503.
    app.add_middleware(
        BodyLimitMiddleware,
        default=settings.max_body_kb * 1024,
        limits={
            # The photo plus room for the form's other fields.
            ("POST", "/v1/search"): (
                int(settings.max_upload_mb * 1024 * 1024) + FORM_OVERHEAD,
                "SNAPSHOP_MAX_UPLOAD_MB",
            ),
            ("POST", "/v1/judgements/import"): (MAX_IMPORT_BYTES, "the CSV import cap"),
        },
    )
    app.add_middleware(
        ConcurrencyLimitMiddleware,
        limit=settings.max_concurrent_requests,
        # probes and scrapes must answer when the server is full
        exempt=("/healthz", "/readyz", "/metrics"),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "If-None-Match", "X-Request-ID"],
            expose_headers=["ETag", "Retry-After", "X-Request-ID"],
        )
    app.add_middleware(SecurityHeadersMiddleware)
    # Outermost: every response gets its request id, and every request is logged and counted
    # (the 413s and 503s of the limits above included).
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        # the documented routes' templates, for requests refused before routing (413, 503)
        templates=lambda: app.openapi().get("paths", {}),
    )
    app.state.rate_limit = (
        RateLimit(settings.search_rate_limit) if settings.search_rate_limit else None
    )

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


def app_from_env() -> FastAPI:
    """The app made from the environment alone: what each worker of ``snapshop serve --workers
    N`` runs (uvicorn imports it by name in each process)."""
    return create_app(Settings())
