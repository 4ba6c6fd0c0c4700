"""Request and response shapes, shared by the HTTP API and ``snapshop search --json``."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from app.profiles.model import FusionSpec


def validation_reasons(exc: ValidationError, whole: str = "body") -> str:
    """Pydantic's errors as one line a person can act on: ``field: problem; ...``.

    ``whole`` names an error about the input as a whole (no field), e.g. "body" for the API.
    """
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or whole}: {e['msg']}" for e in exc.errors()
    )


class Crop(BaseModel):
    """A box in normalised coordinates (0..1, origin top-left); the photo is cut to it first."""

    x0: float = Field(ge=0, le=1)
    y0: float = Field(ge=0, le=1)
    x1: float = Field(ge=0, le=1)
    y1: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Crop:
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError("crop needs x0 < x1 and y0 < y1")
        return self


class Filters(BaseModel):
    category: str | None = Field(default=None, description="Category path prefix.")
    price_min: float | None = Field(default=None, ge=0)
    price_max: float | None = Field(default=None, ge=0)
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Attribute equality (case-insensitive), all must hold."
    )

    @field_validator("category")
    @classmethod
    def _category_has_a_segment(cls, v: str | None) -> str | None:
        # "", " " or "/ /" name no category; the engine would be asked for an empty path.
        if v is not None and not any(seg.strip() for seg in v.split("/")):
            raise ValueError(
                "a category path needs at least one non-blank segment, e.g. Apparel/Topwear; "
                "leave it out to search every category"
            )
        return v

    @model_validator(mode="after")
    def _range(self) -> Filters:
        if (
            self.price_min is not None
            and self.price_max is not None
            and self.price_min > self.price_max
        ):
            raise ValueError("price_min is above price_max")
        return self


class SearchBody(BaseModel):
    """JSON body of ``POST /v1/search`` (multipart: the same fields as form parts, plus ``image``;
    ``filters``, ``crop`` and ``fusion`` are then JSON strings)."""

    q: str | None = Field(default=None, max_length=1_000, description="Typed query.")
    k: int = Field(default=10, ge=1, description="Number of results.")
    offset: int = Field(default=0, ge=0, description="Results to skip (paging).")
    category: str | None = Field(default=None, description="Shorthand for filters.category.")
    filters: Filters | None = None
    crop: Crop | None = Field(default=None, description="Cut the photo to this box first.")
    profile: str | None = Field(default=None, description="Fusion profile name (default).")
    fusion: FusionSpec | None = Field(
        default=None, description="Inline fusion settings; override the profile's."
    )
    explain: bool = Field(default=False, description="Per result: each leg's share.")
    group_by_product: bool = Field(
        default=True, description="Results are products (true) or single images (false)."
    )
    predict_category: bool | None = Field(
        default=None, description="Photo queries: restrict image legs to the predicted category."
    )
    facets: bool = Field(
        default=False,
        description="Also count the fused candidates per category (levels 1-2): `facets`.",
    )

    @field_validator("q")
    @classmethod
    def _strip(cls, v: str | None) -> str | None:
        return (v or "").strip() or None

    @field_validator("category")
    @classmethod
    def _category_has_a_segment(cls, v: str | None) -> str | None:
        return Filters._category_has_a_segment(v)


class ExamplesBody(BaseModel):
    """``POST /v1/search/examples``: products like the positives and unlike the negatives."""

    positive: list[str] = Field(min_length=1, max_length=50)
    negative: list[str] = Field(default_factory=list, max_length=50)
    k: int = Field(default=10, ge=1)
    offset: int = Field(default=0, ge=0)
    filters: Filters | None = None


class LegScore(BaseModel):
    rank: int = Field(description="Rank in this leg, from 1.")
    score: float = Field(description="The leg's raw score (cosine, or BM25).")
    contribution: float = Field(description="Share of the fused score; shares sum to it.")


class SearchResult(BaseModel):
    product_id: str
    title: str
    category: str = Field(description="The product's category path, as in the catalog.")
    score: float = Field(description="Fused score; higher is better.")
    image: str = Field(description="The product image that matched best.")
    matched_images: list[str] = Field(
        default_factory=list, description="Images of this product that the image legs found."
    )
    image_url: str = Field(
        default="",
        description="URL of `image`; `?w=160|320|640` picks the thumbnail width (default 320).",
    )
    matched_image_urls: list[str] = Field(
        default_factory=list, description="URLs of `matched_images`, in the same order."
    )
    price: float | None = None
    ranks: dict[str, int] = Field(
        default_factory=dict, description="Rank (from 1) of this result in each leg that found it."
    )
    exact_match: bool = Field(
        default=False,
        description="The query photo shows this very product (listed before fused results).",
    )
    explain: dict[str, LegScore] | None = None


class PredictedCategory(BaseModel):
    path: str
    confidence: float = Field(description="Share of the top image neighbours in this category.")
    applied: bool = Field(description="Whether the image legs were restricted to it.")


class FacetCount(BaseModel):
    value: str = Field(description="A category path of depth 1 or 2.")
    count: int = Field(description="Fused candidates (products, or images) in it.")


class ProfileRef(BaseModel):
    name: str
    version: int


class SearchResponse(BaseModel):
    results: list[SearchResult]
    timings_ms: dict[str, float]
    model: str
    legs: list[str] = Field(description="Legs this query ran (its inputs and weights decide).")
    profile: ProfileRef
    fusion: FusionSpec
    offset: int = 0
    predicted_category: PredictedCategory | None = None
    facets: dict[str, list[FacetCount]] | None = Field(
        default=None,
        description=(
            'With `facets: true`: {"category": [{value, count}]} over every fused candidate '
            "(not only this page), most frequent first."
        ),
    )


class Product(BaseModel):
    product_id: str
    title: str
    category: str
    description: str = ""
    price: float | None = None
    year: int | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    images: list[str]
    image_urls: list[str] = Field(default_factory=list, description="URLs of `images`.")
