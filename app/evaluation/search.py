"""Quality of the whole search service (store, legs, fusion) on query sets with known answers.

Runs every query through ``SearchService.search``, the code the API serves, once per leg
alone (that leg's weight 1, the others 0) and once with the fusion under test, so "hybrid vs
best single leg" is measured on the same store in the same run.

Output shape (``snapshop eval --json``): ``{"model", "profile", "image": {n, recall@1/5/10, mrr,
ndcg@10, by_type: {type: {...}}}, "text": {...}, "legs": {leg: {...}}, "variants": {...}}``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.evaluation.queries import ImageQuery, TextQuery
from app.profiles.model import IMAGE_LEGS, LEGS, TEXT_LEGS, FusionSpec
from app.search.service import SearchQuery, SearchService
from reranker.metrics import mrr, ndcg_at_k, recall_at_k


def metrics(ranked: Sequence[list[str]], relevant: Sequence[frozenset[str]]) -> dict[str, Any]:
    """Mean recall@1/5/10, MRR and nDCG@10 over queries (ranks from 1, binary relevance)."""
    pairs = list(zip(ranked, relevant, strict=True))

    def mean(values: list[float]) -> float:
        return round(float(np.mean(values)), 4) if values else 0.0

    return {
        "n": len(pairs),
        "recall@1": mean([recall_at_k(r, q, 1) for r, q in pairs]),
        "recall@5": mean([recall_at_k(r, q, 5) for r, q in pairs]),
        "recall@10": mean([recall_at_k(r, q, 10) for r, q in pairs]),
        "mrr": mean([mrr(r, q) for r, q in pairs]),
        "ndcg@10": mean([ndcg_at_k(r, q, 10) for r, q in pairs]),
    }


def only(leg: str, base: FusionSpec) -> FusionSpec:
    """``base`` with every leg but ``leg`` switched off."""
    return base.model_copy(update={"weights": {name: float(name == leg) for name in LEGS}})


def _run(service: SearchService, queries: Sequence[SearchQuery]) -> tuple[list[list[str]], float]:
    ranked, started = [], time.perf_counter()
    for q in queries:
        ranked.append([r.product_id for r in service.search(q).results])
    return ranked, (time.perf_counter() - started) * 1000 / max(len(queries), 1)


def _with(query: SearchQuery, spec: FusionSpec) -> SearchQuery:
    return SearchQuery(text=query.text, image=query.image, k=query.k, fusion=spec)


def evaluate_search(
    service: SearchService,
    image_queries: Sequence[ImageQuery] = (),
    text_queries: Sequence[TextQuery] = (),
    fusions: dict[str, FusionSpec] | None = None,
    profile: str | None = None,
    k: int = 10,
) -> dict[str, Any]:
    """Per query type: the profile's fusion (and any extra ``fusions``), and each leg alone."""
    chosen = service.profile(profile)
    base = FusionSpec.model_validate(
        chosen.model_dump(include={"method", "k", "weights", "floors"})
    )
    out: dict[str, Any] = {
        "model": service.encoder.model_id,
        "profile": f"{chosen.name}@{chosen.version}",
        "legs": {},
    }
    sets: list[tuple[str, tuple[str, ...], list[SearchQuery], list[frozenset[str]], list[str]]]
    sets = []
    if image_queries:
        sets.append(
            (
                "image",
                IMAGE_LEGS,
                [SearchQuery(image=q.image.read_bytes(), k=k) for q in image_queries],
                [q.relevant for q in image_queries],
                [q.query_type or "all" for q in image_queries],
            )
        )
    if text_queries:
        sets.append(
            (
                "text",
                TEXT_LEGS,
                [SearchQuery(text=q.text, k=k) for q in text_queries],
                [q.relevant for q in text_queries],
                ["all"] * len(text_queries),
            )
        )
    variants: dict[str, Any] = {}
    for kind, legs, queries, relevant, types in sets:
        ranked, ms = _run(service, [_with(q, base) for q in queries])
        block = {**metrics(ranked, relevant), "ms_per_query": round(ms, 1)}
        by_type: dict[str, list[int]] = defaultdict(list)
        for i, t in enumerate(types):
            by_type[t].append(i)
        if len(by_type) > 1 or kind == "image":
            block["by_type"] = {
                t: metrics([ranked[i] for i in idx], [relevant[i] for i in idx])
                for t, idx in sorted(by_type.items())
            }
        out[kind] = block
        for leg in legs:
            leg_ranked, leg_ms = _run(service, [_with(q, only(leg, base)) for q in queries])
            out["legs"][leg] = {
                "queries": kind,
                **metrics(leg_ranked, relevant),
                "ms_per_query": round(leg_ms, 1),
            }
        for label, spec in (fusions or {}).items():
            v_ranked, v_ms = _run(service, [_with(q, spec) for q in queries])
            variants.setdefault(label, {})[kind] = {
                **metrics(v_ranked, relevant),
                "ms_per_query": round(v_ms, 1),
            }
    if variants:
        out["variants"] = variants
    return out
