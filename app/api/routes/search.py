"""``/v1/search``: typed queries, photo queries, or both."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.api.deps import ServiceDep, SettingsDep
from app.search.schemas import SearchBody, SearchResponse
from app.search.service import SearchQuery
from app.settings import Settings

router = APIRouter(prefix="/v1", tags=["search"])

_MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "Query photo."},
        "q": {"type": "string", "description": "Typed query."},
        "k": {"type": "integer", "default": 10},
        "category": {"type": "string", "description": "Category path prefix."},
    },
}
_POST_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {"schema": SearchBody.model_json_schema()},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        },
        "required": True,
    }
}


def _reasons(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
    )


async def _read_upload(upload: UploadFile, settings: Settings) -> bytes:
    limit = int(settings.max_upload_mb * 1024 * 1024)
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"image larger than {settings.max_upload_mb:g} MB")
    if not data:
        raise HTTPException(422, "image: the uploaded file is empty")
    return data


async def _parse(request: Request, settings: Settings) -> SearchQuery:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()
        image = form.get("image")
        fields: dict[str, str] = {}
        for key in ("q", "k", "category"):
            value = form.get(key)
            if value is None or value == "":
                continue  # absent and empty fields both mean "use the default"
            if not isinstance(value, str):
                raise HTTPException(422, f"{key} must be a plain form field, not a file")
            fields[key] = value
        try:
            body = SearchBody.model_validate(fields)
        except ValidationError as exc:
            raise HTTPException(422, _reasons(exc)) from exc
        data = None
        if isinstance(image, UploadFile):
            data = await _read_upload(image, settings)
        elif image:
            raise HTTPException(422, "image must be sent as a file part")
        return SearchQuery(text=body.q, image=data, k=body.k, category=body.category)
    if ctype in ("application/json", ""):
        try:
            body = SearchBody.model_validate_json(await request.body() or b"{}")
        except ValidationError as exc:
            raise HTTPException(422, _reasons(exc)) from exc
        return SearchQuery(text=body.q, k=body.k, category=body.category)
    raise HTTPException(415, f"send application/json or multipart/form-data, not {ctype}")


@router.post("/search", response_model=SearchResponse, openapi_extra=_POST_BODY)
async def search_post(request: Request, service: ServiceDep, settings: SettingsDep) -> Any:
    """Search by text (JSON or form field ``q``) and/or photo (multipart file ``image``)."""
    query = await _parse(request, settings)
    # Inference and engine calls block: keep them off the event loop.
    return await run_in_threadpool(service.search, query)


@router.get("/search", response_model=SearchResponse)
async def search_get(
    service: ServiceDep,
    q: Annotated[str, Query(description="Typed query.")],
    k: Annotated[int, Query(ge=1, description="Number of products.")] = 10,
    category: Annotated[str | None, Query(description="Category path prefix.")] = None,
) -> Any:
    return await run_in_threadpool(service.search, SearchQuery(text=q, k=k, category=category))
