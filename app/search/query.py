"""One search request as the service takes it, whichever door (API, CLI, evaluation) it came in."""

from __future__ import annotations

from dataclasses import dataclass

from app.profiles.model import FusionSpec
from app.search.schemas import Crop, Filters, SearchBody


@dataclass(frozen=True)
class SearchQuery:
    text: str | None = None
    image: bytes | None = None
    k: int = 10
    offset: int = 0
    category: str | None = None  # shorthand for filters.category
    filters: Filters | None = None
    crop: Crop | None = None
    profile: str | None = None
    fusion: FusionSpec | None = None
    explain: bool = False
    group_by_product: bool = True
    predict_category: bool | None = None
    facets: bool = False

    @classmethod
    def from_body(cls, body: SearchBody, image: bytes | None = None) -> SearchQuery:
        """The request as the API and the CLI both receive it, plus the photo's bytes."""
        return cls(
            text=body.q,
            image=image,
            k=body.k,
            offset=body.offset,
            category=body.category,
            filters=body.filters,
            crop=body.crop,
            profile=body.profile,
            fusion=body.fusion,
            explain=body.explain,
            group_by_product=body.group_by_product,
            predict_category=body.predict_category,
            facets=body.facets,
        )
