"""Quality of the whole search service (store, legs, fusion) on query sets with known answers.

Runs every query through ``SearchService.search``, the code the API serves, once per leg
alone (that leg's weight 1, the others 0) and once with the fusion under test. That way
"hybrid vs best single leg" is measured on the same store in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.evaluation.queries import ImageQuery, TextQuery
from app.profiles.model import IMAGE_LEGS, LEGS, TEXT_LEGS, FusionSpec
from app.search.service import SearchQuery, SearchService
from reranker.metrics import mrr, ndcg_at_k, recall_at_k


def _metrics(ranked: Sequence[list[str]], relevant: Sequence[frozenset[str]]) -> dict[str, float]:
    pairs = list(zip(ranked, relevant, strict=True))
    return {
        "n": len(pairs),
        "recall@1": round(float(np.mean([recall_at_k(r, q, 1) for r, q in pairs])), 4),
        "recall@10": round(float(np.mean([recall_at_k(r, q, 10) for r, q in pairs])), 4),
        "mrr": round(float(np.mean([mrr(r, q) for r, q in pairs])), 4),
        "ndcg@10": round(float(np.mean([ndcg_at_k(r, q, 10) for r, q in pairs])), 4),
    }


def only(leg: str, base: FusionSpec) -> FusionSpec:
    """``base`` with every leg but ``leg`` switched off."""
    return base.model_copy(update={"weights": {name: float(name == leg) for name in LEGS}})


def _run(service: SearchService, queries: Sequence[SearchQuery]) -> tuple[list[list[str]], float]:
    ranked, started = [], time.perf_counter()
    for q in queries:
        ranked.append([r.product_id for r in service.search(q).results])
    return ranked, (time.perf_counter() - started) * 1000 / max(len(queries), 1)


def evaluate_search(
    service: SearchService,
    image_queries: Sequence[ImageQuery] = (),
    text_queries: Sequence[TextQuery] = (),
    fusions: dict[str, FusionSpec] | None = None,
    profile: str | None = None,
    k: int = 10,
) -> dict[str, Any]:
    """Per query set: each leg alone, then each named fusion (default: the profile's)."""
    base = FusionSpec.model_validate(
        service.profile(profile).model_dump(include={"method", "k", "weights", "floors"})
    )
    variants = fusions or {"hybrid": base}
    out: dict[str, Any] = {}
    sets: list[tuple[str, tuple[str, ...], list[SearchQuery], list[frozenset[str]]]] = []
    if image_queries:
        photos = [q.image.read_bytes() for q in image_queries]
        sets.append(
            (
                "photo",
                IMAGE_LEGS,
                [SearchQuery(image=p, k=k, profile=profile) for p in photos],
                [q.relevant for q in image_queries],
            )
        )
    if text_queries:
        sets.append(
            (
                "text",
                TEXT_LEGS,
                [SearchQuery(text=q.text, k=k, profile=profile) for q in text_queries],
                [q.relevant for q in text_queries],
            )
        )
    for name, legs, queries, relevant in sets:
        block: dict[str, Any] = {}
        for leg in legs:
            ranked, ms = _run(service, [_with(q, only(leg, base)) for q in queries])
            block[f"leg:{leg}"] = {**_metrics(ranked, relevant), "ms_per_query": round(ms, 1)}
        for label, spec in variants.items():
            ranked, ms = _run(service, [_with(q, spec) for q in queries])
            block[label] = {**_metrics(ranked, relevant), "ms_per_query": round(ms, 1)}
        out[name] = block
    return out


def _with(query: SearchQuery, spec: FusionSpec) -> SearchQuery:
    return SearchQuery(
        text=query.text,
        image=query.image,
        k=query.k,
        profile=query.profile,
        fusion=spec,
        predict_category=query.predict_category,
    )
