"""``/v1/products``: one product as stored, and its visual neighbours."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from app.api.deps import RateLimitDep, RunnerDep, ServiceDep
from app.api.problems import invalid
from app.search.schemas import Filters, Product, SearchResponse

router = APIRouter(
    prefix="/v1/products",
    tags=["products"],
    responses={404: {"description": "The catalog has no such product."}},
)
ProductId = Annotated[str, Path(min_length=1, max_length=256, description="The shop's id.")]


@router.get("/{product_id}", response_model=Product)
async def get_product(product_id: ProductId, service: ServiceDep) -> Any:
    return await run_in_threadpool(service.product, product_id)


@router.get(
    "/{product_id}/similar",
    response_model=SearchResponse,
    dependencies=[RateLimitDep],  # a search like the others
    responses={429: {"description": "Over the per-client rate limit; see Retry-After."}},
)
async def similar_products(
    product_id: ProductId,
    service: ServiceDep,
    run: RunnerDep,
    k: Annotated[int, Query(ge=1)] = 10,
    offset: Annotated[int, Query(ge=0)] = 0,
    category: Annotated[str | None, Query(description="Category path prefix.")] = None,
) -> Any:
    """Products nearest to this one's images and text; the product itself is excluded."""
    try:
        filters = Filters(category=category or None)
    except ValidationError as exc:
        raise invalid(exc) from exc
    return await run(service.similar, product_id, k, offset, filters)
