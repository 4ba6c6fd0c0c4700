"""``/v1/fusion/profiles``: read the blending profiles; save a new version (admin key)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool

from app.api.deps import ADMIN_RESPONSES, AdminDep, ProfilesDep
from app.profiles import FusionProfile, ProfileError
from app.profiles.model import NAME_RE, ProfileSettings
from app.sqlite import MAX_INTEGER

router = APIRouter(prefix="/v1/fusion/profiles", tags=["fusion"])
Name = Annotated[str, Path(max_length=64, description="Profile name.")]


class ProfileBody(ProfileSettings):
    """What a PUT may set; name, version and time are the server's."""


@router.get("")
async def list_profiles(profiles: ProfilesDep) -> dict[str, Any]:
    names = await run_in_threadpool(profiles.names)
    current = [await run_in_threadpool(profiles.get, n) for n in names]
    return {"profiles": [p.model_dump() for p in current]}


@router.get(
    "/{name}",
    response_model=FusionProfile,
    responses={404: {"description": "No such profile or version."}},
)
async def get_profile(
    name: Name,
    profiles: ProfilesDep,
    version: Annotated[
        int | None, Query(ge=0, le=MAX_INTEGER, description="A past version.")
    ] = None,
) -> Any:
    try:
        return await run_in_threadpool(profiles.get, name, version)
    except ProfileError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.put(
    "/{name}", response_model=FusionProfile, dependencies=[AdminDep], responses=ADMIN_RESPONSES
)
async def put_profile(
    name: Name, profiles: ProfilesDep, body: Annotated[ProfileBody, Body()]
) -> Any:
    """Save ``body`` as the next version of profile ``name`` (older versions are kept)."""
    if not NAME_RE.match(name):
        raise HTTPException(422, "name: 1-64 of a-z, 0-9, - and _, starting with a letter or digit")
    try:
        profile = FusionProfile.model_validate({**body.model_dump(), "name": name})
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return await run_in_threadpool(profiles.save, profile)
