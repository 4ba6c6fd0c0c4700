"""Request and response shapes, shared by the HTTP API and ``snapshop search --json``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SearchResult(BaseModel):
    product_id: str
    title: str
    category: str = Field(description="The product's category path, as in the catalog.")
    score: float = Field(description="Fused score (reciprocal-rank fusion); higher is better.")
    image: str = Field(description="File name of the product image that matched best.")
    ranks: dict[str, int] = Field(
        default_factory=dict, description="Rank (from 1) of this product in each leg that found it."
    )


class SearchResponse(BaseModel):
    results: list[SearchResult]
    timings_ms: dict[str, float]
    model: str
    legs: list[str] = Field(description="Legs this query ran (its inputs decide which).")


class SearchBody(BaseModel):
    """JSON body of ``POST /v1/search`` (use multipart to send an image)."""

    q: str | None = Field(default=None, description="Typed query.")
    k: int = Field(default=10, ge=1, description="Number of products to return.")
    category: str | None = Field(
        default=None, description="Category path prefix, e.g. Apparel/Topwear."
    )
