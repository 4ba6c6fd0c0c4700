"""Request checks: page bounds, the store filter from ``Filters``, the profile a query names.

Every failure is a ``QueryError`` whose message tells the caller what to change; the checks
run in a fixed order, so a request with several problems always reports the same one first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.profiles.model import FusionProfile, FusionSpec
from app.profiles.repository import ProfileError, ProfileRepository
from app.search.errors import QueryError
from app.search.leg_names import IMAGE_INSTANCE, IMAGE_LEGS, TEXT_LEGS
from app.search.query import SearchQuery
from app.search.schemas import Filters
from app.store import SearchFilter


@dataclass(frozen=True)
class Prepared:
    """A checked query: its text, profile, blend, store filter and the legs its inputs allow."""

    text: str | None
    profile: FusionProfile
    spec: FusionSpec
    flt: SearchFilter
    available: tuple[str, ...]


def store_filter(filters: Filters | None, category: str | None = None) -> SearchFilter:
    """The engine's filter for a request's ``filters`` and its ``category`` shorthand."""
    f = filters or Filters()
    cat = (f.category or category or "").strip().strip("/") or None
    if f.category and category and f.category.strip("/") != category.strip("/"):
        raise QueryError("category and filters.category disagree; give one of them")
    attrs = tuple(sorted((k.strip(), v.strip()) for k, v in f.attributes.items()))
    if any(not k or not v for k, v in attrs):
        raise QueryError("filters.attributes: names and values must not be empty")
    return SearchFilter(
        category=cat, price_min=f.price_min, price_max=f.price_max, attributes=attrs
    )


class QueryChecks:
    """The service's limits (page size, paging window) and where its profiles come from."""

    def __init__(
        self,
        default_profile: FusionProfile,
        profiles: ProfileRepository | None,
        max_k: int,
        max_window: int,
        has_instance: Callable[[], bool] = lambda: False,
    ) -> None:
        # Asked per query: a store can gain instance vectors while the service runs (ingest).
        self.has_instance = has_instance
        self.default_profile = default_profile
        self.profiles = profiles
        self.max_k = max_k
        self.max_window = max_window

    def check_page(self, k: int, offset: int) -> None:
        if not 1 <= k <= self.max_k:
            raise QueryError(f"k must be between 1 and {self.max_k}, got {k}")
        if offset < 0 or offset + k > self.max_window:
            raise QueryError(
                f"offset + k must be at most {self.max_window} (got {offset} + {k}); "
                "narrow the query with filters instead of paging that deep"
            )

    def profile(self, name: str | None) -> FusionProfile:
        """The named profile (None: the default, as saved or else built in)."""
        if name is None or name == self.default_profile.name:
            if self.profiles is None:
                return self.default_profile
            found = self.profiles.get(self.default_profile.name)
            return self.default_profile if found.version == 0 else found
        if self.profiles is None:
            raise QueryError(f"no fusion profile {name!r}: this service has only 'default'")
        try:
            return self.profiles.get(name)
        except ProfileError as exc:
            raise QueryError(str(exc)) from exc

    def prepare(self, query: SearchQuery) -> Prepared:
        """Check ``query`` and resolve what running it needs."""
        text = (query.text or "").strip() or None
        if text is None and not query.image:
            raise QueryError("give a text query (q), an image, or both")
        self.check_page(query.k, query.offset)
        if query.crop is not None and not query.image:
            raise QueryError("crop applies to an image; none was sent")
        profile = self.profile(query.profile)
        spec = query.fusion or profile.spec()
        flt = store_filter(query.filters, query.category)
        available = (IMAGE_LEGS if query.image else ()) + (TEXT_LEGS if text else ())
        if IMAGE_INSTANCE in available and not self.has_instance():
            # No instance vectors in the store (or none from the model): skipped, not an error.
            available = tuple(leg for leg in available if leg != IMAGE_INSTANCE)
        return Prepared(text, profile, spec, flt, available)
