"""``/v1/search``: typed queries, photo queries, or both."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from app.api.deps import RateLimitDep, RunnerDep, ServiceDep, SettingsDep
from app.api.problems import invalid
from app.search.query import SearchQuery
from app.search.schemas import ExamplesBody, Filters, SearchBody, SearchResponse
from app.settings import Settings

# Public and the costliest routes: the per-client rate limit (off unless configured) applies.
router = APIRouter(prefix="/v1", tags=["search"], dependencies=[RateLimitDep])
_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Over the per-client rate limit; see Retry-After."}
}

_FORM_FIELDS = (
    "q",
    "k",
    "offset",
    "category",
    "profile",
    "explain",
    "group_by_product",
    "predict_category",
    "facets",
)
_JSON_FORM_FIELDS = ("filters", "crop", "fusion")
_MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "Query photo."},
        "q": {"type": "string", "description": "Typed query."},
        "k": {"type": "integer", "default": 10},
        "offset": {"type": "integer", "default": 0},
        "category": {"type": "string", "description": "Category path prefix."},
        "profile": {"type": "string", "description": "Fusion profile name."},
        "explain": {"type": "boolean", "default": False},
        "group_by_product": {"type": "boolean", "default": True},
        "predict_category": {"type": "boolean"},
        "facets": {"type": "boolean", "default": False},
        "filters": {"type": "string", "description": "JSON object, as in the JSON body."},
        "crop": {"type": "string", "description": 'JSON {"x0","y0","x1","y1"} in 0..1.'},
        "fusion": {"type": "string", "description": 'JSON {"method","k","weights","floors"}.'},
    },
}
_POST_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            # registered as a component by app.api.problems, so its own $refs resolve
            "application/json": {"schema": {"$ref": "#/components/schemas/SearchBody"}},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        },
        "required": True,
    }
}


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
        # the context closes the spooled parts however the parse ends
        async with request.form() as form:
            return await _parse_form(form, settings)
    if ctype in ("application/json", ""):
        try:
            body = SearchBody.model_validate_json(await request.body() or b"{}")
        except ValidationError as exc:
            raise invalid(exc) from exc
        return SearchQuery.from_body(body)
    raise HTTPException(415, f"send application/json or multipart/form-data, not {ctype}")


async def _parse_form(form: FormData, settings: Settings) -> SearchQuery:
    """The multipart or urlencoded form: its fields as ``SearchBody``, plus the photo."""
    image = form.get("image")
    fields: dict[str, Any] = {}
    for key in (*_FORM_FIELDS, *_JSON_FORM_FIELDS):
        value = form.get(key)
        if value is None or value == "":
            continue  # absent and empty fields both mean "use the default"
        if not isinstance(value, str):
            raise HTTPException(422, f"{key} must be a plain form field, not a file")
        if key in _JSON_FORM_FIELDS:
            try:
                fields[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise HTTPException(422, f"{key}: not valid JSON ({exc.msg})") from exc
        else:
            fields[key] = value
    unknown = sorted(set(form.keys()) - {*_FORM_FIELDS, *_JSON_FORM_FIELDS, "image"})
    if unknown:
        raise HTTPException(422, f"unknown form field(s): {', '.join(unknown)}")
    try:
        body = SearchBody.model_validate(fields)
    except ValidationError as exc:
        raise invalid(exc) from exc
    data = None
    if isinstance(image, UploadFile):
        data = await _read_upload(image, settings)
    elif image:
        raise HTTPException(422, "image must be sent as a file part")
    return SearchQuery.from_body(body, data)


@router.post(
    "/search",
    response_model=SearchResponse,
    openapi_extra=_POST_BODY,
    responses={
        400: {"description": "A malformed multipart body."},
        415: {"description": "Neither JSON nor multipart/form-data."},
        422: {"description": "A bad field, no query, or an undecodable photo."},
        **_LIMITED,
    },
)
async def search_post(
    request: Request, service: ServiceDep, settings: SettingsDep, run: RunnerDep
) -> Any:
    """Search by text (``q``) and/or photo (multipart file ``image``), filtered, fused, paged."""
    query = await _parse(request, settings)
    # Inference and engine calls block: keep them off the event loop.
    return await run(service.search, query)


@router.get("/search", response_model=SearchResponse, responses=_LIMITED)
async def search_get(
    service: ServiceDep,
    run: RunnerDep,
    q: Annotated[str, Query(max_length=1_000, description="Typed query.")],
    k: Annotated[int, Query(ge=1, description="Number of results.")] = 10,
    offset: Annotated[int, Query(ge=0, description="Results to skip.")] = 0,
    category: Annotated[str | None, Query(description="Category path prefix.")] = None,
    price_min: Annotated[float | None, Query(ge=0)] = None,
    price_max: Annotated[float | None, Query(ge=0)] = None,
    profile: Annotated[str | None, Query(description="Fusion profile name.")] = None,
    explain: Annotated[bool, Query(description="Per result: each leg's share.")] = False,
    group_by_product: Annotated[bool, Query()] = True,
    facets: Annotated[bool, Query(description="Count candidates per category.")] = False,
) -> Any:
    """Typed query in the URL (shareable links); the POST form has every option."""
    try:
        # an empty category= means "any", as an empty form field does
        filters = Filters(category=category or None, price_min=price_min, price_max=price_max)
    except ValidationError as exc:
        raise invalid(exc) from exc
    query = SearchQuery(
        text=q,
        k=k,
        offset=offset,
        filters=filters,
        profile=profile,
        explain=explain,
        group_by_product=group_by_product,
        facets=facets,
    )
    return await run(service.search, query)


@router.post(
    "/search/examples",
    response_model=SearchResponse,
    responses={404: {"description": "An example is not in the catalog."}, **_LIMITED},
)
async def search_examples(body: ExamplesBody, service: ServiceDep, run: RunnerDep) -> Any:
    """Products like the ``positive`` examples and unlike the ``negative`` ones.

    For instance, to find candidates for a new attribute ("Hawaiian"), give a few products
    that have it as positives and a few lookalikes that do not as negatives.
    """
    return await run(
        service.examples, body.positive, body.negative, body.k, body.offset, body.filters
    )
