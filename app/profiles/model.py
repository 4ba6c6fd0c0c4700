"""What a fusion profile holds, and the default one.

A profile says how the legs' lists are blended: the fusion method (see ``reranker``), RRF's
``k``, a weight per leg (0 switches a leg off, and it is then not even run), a score floor per
leg (hits below it are dropped inside the engine, filters or not), whether a photo query may
restrict the image legs to a predicted category, and how many candidates each leg fetches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, Field, field_validator

from app.search.leg_names import (
    BM25,
    IMAGE_INSTANCE,
    IMAGE_TO_IMAGE,
    IMAGE_TO_TEXT,
    LEGS,
    TEXT_TO_IMAGE,
    TEXT_TO_TEXT,
)
from reranker import DEFAULT_K, Method

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _check_legs(values: dict[str, float], what: str) -> dict[str, float]:
    unknown = sorted(set(values) - set(LEGS))
    if unknown:
        raise ValueError(f"unknown leg(s) {', '.join(unknown)} in {what}; legs: {', '.join(LEGS)}")
    return values


class FusionSpec(BaseModel):
    """How to blend: usable inline in a request (``fusion``) or as a profile's body."""

    method: Method = Field(default="rrf", description="rrf, minmax, zscore or dbsf.")
    k: int = Field(default=DEFAULT_K, ge=1, le=10_000, description="RRF k (ranks start at 1).")
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Weight per leg (missing = 1; 0 turns the leg off).",
    )
    floors: dict[str, float] = Field(
        default_factory=dict, description="Minimum raw score per leg (cosine, or BM25 score)."
    )

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        if any(w < 0 or w != w for w in v.values()):
            raise ValueError("weights must be non-negative numbers")
        return _check_legs(v, "weights")

    @field_validator("floors")
    @classmethod
    def _floors(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_legs(v, "floors")

    def weight(self, leg: str) -> float:
        return float(self.weights.get(leg, 1.0))

    def active(self, legs: Iterable[str]) -> list[str]:
        """The ``legs`` this blend uses (weight > 0), in their given order; the rest never run."""
        return [leg for leg in legs if self.weight(leg) > 0]


class ProfileSettings(FusionSpec):
    """A profile's settings: the blend and how a search uses it (what an editor may set)."""

    description: str = Field(default="", max_length=2_000)
    predict_category: bool = Field(
        default=False,
        description="Restrict a photo query's image legs to its predicted category when sure.",
    )
    category_confidence: float = Field(
        default=0.7, gt=0, le=1, description="Share of the top neighbours that must agree."
    )
    candidates: int = Field(default=100, ge=10, le=1_000, description="Hits fetched per leg.")
    exact_match: float | None = Field(
        default=0.99,
        gt=0,
        le=1,
        description=(
            "A product whose photo has at least this cosine with the query photo is the very "
            "item: listed first, marked exact_match, whatever the other legs say. The cosine "
            "is the instance vector's where the image_instance leg ran. null = off."
        ),
    )


class _ProfileIdentity(FusionSpec):
    """Name and version: the server's, never an editor's (see ``FusionProfile``)."""

    name: str = Field(default="default", description="Lower-case letters, digits, - and _.")
    version: int = Field(default=0, ge=0, description="Set by the server on every save.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("name: 1-64 of a-z, 0-9, - and _, starting with a letter or digit")
        return v


# A named, versioned profile as stored and served (no docstring: it would become the OpenAPI
# schema's description). Bases in this order because pydantic collects fields along the
# reversed MRO: name and version come before the settings, so a profile's JSON keeps its order.
class FusionProfile(ProfileSettings, _ProfileIdentity):
    updated_at: str | None = None

    def spec(self) -> FusionSpec:
        """The blend alone (method, k, weights, floors): what a request's ``fusion`` overrides."""
        return FusionSpec.model_validate(self.model_dump(include=set(FusionSpec.model_fields)))


# Chosen by `snapshop tune` (README, "Fusion") on the dev shelf photos held out of training, 200
# generated snapshots and the typed queries, grouped train/validation split: k 1 makes a leg's
# first place count far more than its second, which the identity leg needs to put the very
# product first; BM25 over the catalog's metadata still decides typed queries, the dense text
# legs break its near-ties.
DEFAULT_PROFILE = FusionProfile(
    name="default",
    description="Built-in defaults; see the README's fusion section for how they were chosen.",
    method="rrf",
    k=1,
    weights={
        IMAGE_TO_IMAGE: 0.5,
        IMAGE_TO_TEXT: 2.0,
        # The identity leg leads for photos: alone, R@1 0.905 on dev snapshots and R@10 0.914
        # on held-out shelf photos (recipe 5); skipped where the store has no instance vectors.
        IMAGE_INSTANCE: 8.0,
        TEXT_TO_IMAGE: 0.5,
        TEXT_TO_TEXT: 1.0,
        # Past the tuner's grid (its top is 32): at 32 a product in BM25's 12th place that the
        # dense text leg ranks first overtook BM25's 10th; at 64 the dense legs only break
        # near-ties. Photo-only queries have no BM25 leg, so they are unaffected.
        BM25: 64.0,
    },
)
