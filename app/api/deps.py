"""Request-scoped dependencies, as ``Annotated`` aliases the routers declare."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from app.api.sync import SyncJobs
from app.api.thumbnails import Thumbnails
from app.embedding import Encoder
from app.evaluation.judgements import JudgementStore
from app.evaluation.querysets import QuerySetStore
from app.profiles import ProfileRepository
from app.search.service import SearchService
from app.settings import Settings
from app.store import VectorStore


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_service(request: Request) -> SearchService:
    service: SearchService = request.app.state.service
    return service


def get_encoder(request: Request) -> Encoder:
    encoder: Encoder = request.app.state.encoder
    return encoder


def get_store(request: Request) -> VectorStore:
    store: VectorStore = request.app.state.store
    return store


def get_profiles(request: Request) -> ProfileRepository:
    profiles: ProfileRepository = request.app.state.profiles
    return profiles


def get_judgements(request: Request) -> JudgementStore:
    judgements: JudgementStore = request.app.state.judgements
    return judgements


def get_querysets(request: Request) -> QuerySetStore:
    sets: QuerySetStore = request.app.state.querysets
    return sets


def get_thumbnails(request: Request) -> Thumbnails:
    thumbnails: Thumbnails = request.app.state.thumbnails
    return thumbnails


def get_sync(request: Request) -> SyncJobs:
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


def require_admin(
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
