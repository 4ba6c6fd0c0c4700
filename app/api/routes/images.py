"""``/v1/images``: the catalog's product photos as thumbnails, for pages and apps.

Only images the store references are served, found by (product, position): a request never
names a file, so no path outside the ingested catalog can be reached.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from app.api.deps import ServiceDep, ThumbnailsDep
from app.search.images import DEFAULT_WIDTH, IMAGES_PATH, WIDTHS

router = APIRouter(prefix=IMAGES_PATH, tags=["products"])
CACHE_CONTROL = "public, max-age=86400"


@router.get(
    "/{product_id}/{n}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The thumbnail (JPEG)."},
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
        404: {"description": "No such product, image, or the file is gone from disk."},
    },
)
async def product_image(
    request: Request,
    product_id: Annotated[str, Path(min_length=1, max_length=256, description="The shop's id.")],
    n: Annotated[int, Path(ge=0, le=10_000, description="Position in the product's images.")],
    service: ServiceDep,
    thumbnails: ThumbnailsDep,
    w: Annotated[int, Query(description="Width in px: 160, 320 or 640.")] = DEFAULT_WIDTH,
) -> Response:
    """Image ``n`` (from 0) of a product, resized to ``w`` px wide at most; cached, with ETag."""
    if w not in WIDTHS:
        raise HTTPException(422, f"w must be one of {', '.join(map(str, WIDTHS))}, got {w}")
    source = await run_in_threadpool(service.image_path, product_id, n)
    if not source.is_file():
        raise HTTPException(404, f"image {n} of {product_id!r} is gone from disk; ingest again")
    try:
        path, key = await run_in_threadpool(thumbnails.get, source, w)
    except OSError as exc:  # unreadable since ingest (a truncated or replaced file)
        raise HTTPException(404, f"image {n} of {product_id!r} cannot be read: {exc}") from exc
    etag = f'"{key}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type="image/jpeg", headers=headers)
