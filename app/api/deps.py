"""Request-scoped dependencies, as ``Annotated`` aliases the routers declare.

Every one is a coroutine, though none awaits anything: FastAPI runs a plain ``def`` dependency
in its thread pool, a hop to a worker thread and back per dependency (a search resolves five).
At 100k products, one client, the time from the request's arrival to the search's start went
1.25 -> 0.62 ms for typed queries and 1.61 -> 0.89 ms for photos (in-process ASGI, p50 of 80)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from app.api.problems import ProblemError
from app.api.ratelimit import RateLimit, retry_after
from app.api.serving import Generation, Live
from app.api.sync import SyncJobs
from app.api.thumbnails import Thumbnails
from app.embedding import Encoder
from app.evaluation.judgements import JudgementStore
from app.evaluation.querysets import QuerySetStore
from app.profiles import ProfileRepository
from app.search.service import SearchService
from app.settings import Settings
from app.store import VectorStore


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_live(request: Request) -> Live:
    live: Live = request.app.state.live
    return live


async def get_generation(live: Annotated[Live, Depends(get_live)]) -> AsyncIterator[Generation]:
    """The generation (encoder, store, service) this request runs on, held until it ends: a
    model swap meanwhile closes it only after this request has finished. Resolved once per
    request, so all of a request's parts come from the same generation."""
    with live.lease() as gen:
        yield gen


GenerationDep = Annotated[Generation, Depends(get_generation)]


async def get_service(gen: GenerationDep) -> SearchService:
    return gen.service


async def get_encoder(gen: GenerationDep) -> Encoder:
    return gen.encoder


async def get_store(gen: GenerationDep) -> VectorStore:
    return gen.store


async def get_profiles(request: Request) -> ProfileRepository:
    profiles: ProfileRepository = request.app.state.profiles
    return profiles


async def get_judgements(request: Request) -> JudgementStore:
    judgements: JudgementStore = request.app.state.judgements
    return judgements


async def get_querysets(request: Request) -> QuerySetStore:
    sets: QuerySetStore = request.app.state.querysets
    return sets


async def get_thumbnails(request: Request) -> Thumbnails:
    thumbnails: Thumbnails = request.app.state.thumbnails
    return thumbnails


async def get_sync(request: Request) -> SyncJobs:
    jobs: SyncJobs = request.app.state.sync
    return jobs


SettingsDep = Annotated[Settings, Depends(get_settings)]
ThumbnailsDep = Annotated[Thumbnails, Depends(get_thumbnails)]
ProfilesDep = Annotated[ProfileRepository, Depends(get_profiles)]
JudgementsDep = Annotated[JudgementStore, Depends(get_judgements)]
QuerySetsDep = Annotated[QuerySetStore, Depends(get_querysets)]
ServiceDep = Annotated[SearchService, Depends(get_service)]
EncoderDep = Annotated[Encoder, Depends(get_encoder)]
StoreDep = Annotated[VectorStore, Depends(get_store)]
SyncDep = Annotated[SyncJobs, Depends(get_sync)]
LiveDep = Annotated[Live, Depends(get_live)]


async def require_admin(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="The admin key.")] = None,
) -> None:
    """Admin routes need ``X-API-Key`` equal to ``SNAPSHOP_ADMIN_KEY`` (constant-time compare)."""
    if settings.admin_key is None:
        raise HTTPException(
            status_code=403, detail="the admin API is disabled: set SNAPSHOP_ADMIN_KEY to use it"
        )
    expected = settings.admin_key.get_secret_value().encode()
    given = (x_api_key or "").encode()
    # compare_digest takes time independent of where the strings differ.
    if not x_api_key or not hmac.compare_digest(given, expected):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong X-API-Key header",
            headers={"WWW-Authenticate": "X-API-Key"},
        )


AdminDep = Depends(require_admin)
# What every route behind ``AdminDep`` may answer, for the OpenAPI document.
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong X-API-Key header."},
    403: {"description": "The admin API is disabled (SNAPSHOP_ADMIN_KEY unset)."},
}


async def rate_limit_search(request: Request) -> None:
    """429 + ``Retry-After`` when this client is over ``SNAPSHOP_SEARCH_RATE_LIMIT``."""
    limit: RateLimit | None = request.app.state.rate_limit
    if limit is None:
        return
    # The peer address: behind a proxy, run uvicorn with --proxy-headers so it is the client's.
    client = request.client.host if request.client else "unknown"
    wait = limit.hit(client)
    if wait is not None:
        raise ProblemError(
            429,
            f"too many searches from {client} (limit {limit.rates}); "
            f"retry in {retry_after(wait)} s",
            headers={"Retry-After": retry_after(wait)},
        )


RateLimitDep = Depends(rate_limit_search)


T = TypeVar("T")
Runner = Callable[..., Awaitable[Any]]


async def get_runner(settings: SettingsDep) -> Runner:
    """Runs blocking search work in the thread pool, cut off after ``request_timeout_s``.

    The thread itself cannot be stopped: it finishes in the background, but the client gets a
    503 at the limit instead of waiting on a stuck search.
    """

    async def run(func: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.wait_for(
                run_in_threadpool(func, *args), timeout=settings.request_timeout_s
            )
        except TimeoutError as exc:
            raise ProblemError(
                503,
                f"the search took longer than {settings.request_timeout_s:g} s "
                "(SNAPSHOP_REQUEST_TIMEOUT_S); retry, or ask for fewer results",
                headers={"Retry-After": "5"},
            ) from exc

    return run


RunnerDep = Annotated[Runner, Depends(get_runner)]
