"""From the legs' hits to one ranked list: group by product, fuse, put an exact match first.

Pure functions shared by ``SearchService`` and by offline tuning (``app.evaluation.tune``),
which re-fuses cached leg lists thousands of times: both must rank the same way, and a test
checks that they do.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from app.profiles.model import FusionSpec
from app.search.leg_names import IMAGE_INSTANCE, IMAGE_TO_IMAGE
from app.store import Hit
from app.store.fields import PRODUCT_ID
from reranker import Fused, fuse

LegList = list[tuple[str, float]]  # (product or point id, raw score), best first


def key_of(hit: Hit, by_product: bool) -> str:
    return str(hit.payload.get(PRODUCT_ID, hit.id)) if by_product else hit.id


def group_hits(hits: Sequence[Hit], by_product: bool) -> LegList:
    """One entry per product at its best hit (hits come best first), or one per point."""
    scored: dict[str, float] = {}
    for hit in hits:
        key = key_of(hit, by_product)
        if key not in scored:
            scored[key] = hit.score
    return list(scored.items())


def judge_leg(names: Collection[str]) -> str:
    """The image leg whose cosines the exact-match rule compares with its threshold, of the legs
    ``names``: the identity embedding where it runs (it is trained to match re-shot photos of
    one product; the text-aligned image vector only matches its kind), else the image leg."""
    return IMAGE_INSTANCE if IMAGE_INSTANCE in names else IMAGE_TO_IMAGE


def fuse_legs(
    lists: Mapping[str, LegList],
    spec: FusionSpec,
    exact_match: float | None = None,
    judged: Mapping[str, Mapping[str, float]] | None = None,
) -> tuple[list[Fused[str]], set[str]]:
    """Fused order over the legs with weight > 0, and the keys that are an exact photo match.

    ``judged`` (leg -> key -> cosine), where given, is what the exact-match rule compares with
    its threshold (the whole photo's cosines); by default the judge leg's own scores.

    Legs with weight 0 are left out before fusing, as the service never runs them: a
    normalising method (min-max, z-score) would otherwise still list their items.
    """
    names = spec.active(lists)
    fused = fuse(
        spec.method, [lists[leg] for leg in names], [spec.weight(n) for n in names], spec.k
    )
    exact: set[str] = set()
    judge = judge_leg(names)
    if exact_match is not None and judge in names:
        # The very item photographed outranks anything similar, whatever the text legs say;
        # within that tier the closest photo first, the rest keep the fused order.
        image_scores = dict(judged.get(judge, {}) if judged is not None else lists[judge])
        exact = {key for key, s in image_scores.items() if s >= exact_match}
        # The very photo found by its own vector but by none of the legs still leads.
        listed = {f.item for f in fused}
        fused.extend(Fused(key, 0.0, (0.0,) * len(names), 0) for key in sorted(exact - listed))
        fused.sort(key=lambda f: -image_scores[f.item] if f.item in exact else 1.0)
    return fused, exact
