"""Result assembly: the legs' hits fused, the requested page cut, each entry a ``SearchResult``.

Ranking itself is ``app.search.ranking`` (shared with offline tuning); this module adds what a
caller sees: the product's payload, which of its photos matched, per-leg ranks, ``explain``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from app.profiles.model import FusionSpec
from app.search.images import image_urls
from app.search.leg_names import IMAGE_VECTOR_LEGS
from app.search.ranking import LegList, fuse_legs, key_of
from app.search.schemas import LegScore, SearchResult
from app.search.timing import elapsed_ms
from app.store import Hit
from app.store.fields import CATEGORY_PATH, IMAGE_FILE, IMAGES, PRICE, PRODUCT_ID, TITLE
from reranker import Fused


def fuse_page(
    leg_hits: Sequence[tuple[str, list[Hit]]],
    spec: FusionSpec,
    k: int,
    offset: int,
    explain: bool,
    by_product: bool,
    timings: dict[str, float],
    exact_match: float | None = None,
    whole_photo: Mapping[str, Sequence[Hit]] | None = None,
    window: list[Hit] | None = None,
    page_payloads: Callable[[Sequence[str]], Mapping[str, Mapping[str, object]]] | None = None,
) -> list[SearchResult]:
    """The page ``offset:offset + k`` of the fused ranking over ``leg_hits``.

    Legs' hits carry only ``HIT_FIELDS``; ``page_payloads`` (point ids -> payloads) supplies
    the rest of what a result shows, for the page's hits only, in one call.

    ``whole_photo``: per image leg, the points nearest to the whole query photo
    (``LegRunner``), which the exact-match rule judges by. ``window``, when given, receives one
    hit per fused candidate (the whole ranking, not only the page): what facets are counted
    over.
    """
    t = time.perf_counter()
    lists: dict[str, LegList] = {}
    best: dict[str, Hit] = {}  # key -> a hit carrying its payload
    images: dict[str, dict[str, float]] = {}  # key -> image file -> best image-leg score
    for leg, hits in leg_hits:
        # ``group_hits`` inline, so that each hit's key is worked out once
        scored: dict[str, float] = {}
        image_leg = leg in IMAGE_VECTOR_LEGS
        for hit in hits:
            key = key_of(hit, by_product)
            if key not in scored:
                scored[key] = hit.score
                best.setdefault(key, hit)
            if image_leg:
                name = str(hit.payload.get(IMAGE_FILE, ""))
                seen = images.setdefault(key, {})
                seen[name] = max(seen.get(name, float("-inf")), hit.score)
        lists[leg] = list(scored.items())
    judged = None
    if whole_photo is not None:
        judged = judged_by_key(whole_photo, by_product)
        for nearest in whole_photo.values():
            for hit in nearest:  # an exact match the legs' candidates missed needs a payload
                best.setdefault(key_of(hit, by_product), hit)
    fused, exact = fuse_legs(lists, spec, exact_match, judged)
    names = spec.active(lists)
    if window is not None:
        window.extend(best[f.item] for f in fused)
    fused = fused[offset : offset + k]
    timings["fusion"] = elapsed_ms(t)
    if page_payloads is not None and fused:
        t = time.perf_counter()
        more = page_payloads([best[f.item].id for f in fused])
        for f in fused:
            hit = best[f.item]
            best[f.item] = Hit(hit.id, hit.score, {**more.get(hit.id, {}), **hit.payload})
        timings["page"] = elapsed_ms(t)
    # Ranks are shown for the page's entries only: no need to index every candidate.
    page = {f.item for f in fused}
    positions = [
        {key: (r, s) for r, (key, s) in enumerate(lists[leg], start=1) if key in page}
        for leg in names
    ]
    return [
        to_result(
            f, best[f.item], images.get(f.item, {}), names, positions, explain, f.item in exact
        )
        for f in fused
    ]


def judged_by_key(
    whole_photo: Mapping[str, Sequence[Hit]], by_product: bool
) -> dict[str, dict[str, float]]:
    """Per leg, the whole photo's nearest points as product (or point) keys, best first."""
    out: dict[str, dict[str, float]] = {}
    for leg, hits in whole_photo.items():
        keyed = out.setdefault(leg, {})
        for hit in hits:
            key = key_of(hit, by_product)
            keyed[key] = max(keyed.get(key, -1.0), hit.score)
    return out


def to_result(
    f: Fused[str],
    hit: Hit,
    matched: dict[str, float],
    names: Sequence[str],
    positions: Sequence[dict[str, tuple[int, float]]],
    explain: bool,
    exact: bool = False,
) -> SearchResult:
    """One fused entry as the caller sees it; ``positions``: per leg in ``names``, key -> rank."""
    payload = hit.payload
    ranked = sorted(matched, key=lambda n: -matched[n])
    own = [str(x) for x in payload.get(IMAGES, [])] or [str(payload.get(IMAGE_FILE, ""))]
    ranks = {
        leg: pos[f.item][0] for leg, pos in zip(names, positions, strict=True) if f.item in pos
    }
    details = None
    if explain:
        details = {
            leg: LegScore(rank=pos[f.item][0], score=pos[f.item][1], contribution=part)
            for leg, pos, part in zip(names, positions, f.contributions, strict=True)
            if f.item in pos
        }
    price = payload.get(PRICE)
    product_id = str(payload.get(PRODUCT_ID, ""))
    image = ranked[0] if ranked else str(payload.get(IMAGE_FILE, own[0]))
    return SearchResult(
        product_id=product_id,
        title=str(payload.get(TITLE, "")),
        category=str(payload.get(CATEGORY_PATH, "")),
        score=f.score,
        image=image,
        matched_images=ranked,
        image_url=next(iter(image_urls(product_id, own, [image])), ""),
        matched_image_urls=image_urls(product_id, own, ranked),
        price=float(price) if isinstance(price, (int, float)) else None,
        ranks=ranks,
        exact_match=exact,
        explain=details,
    )
