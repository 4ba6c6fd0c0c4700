"""Request-scoped dependencies, as ``Annotated`` aliases the routers declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.embedding import Encoder
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


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[SearchService, Depends(get_service)]
EncoderDep = Annotated[Encoder, Depends(get_encoder)]
StoreDep = Annotated[VectorStore, Depends(get_store)]
