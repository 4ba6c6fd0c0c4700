"""Quality of the whole search service (store, legs, fusion) on query sets with known answers.

Runs every query through ``SearchService.search``, the code the API serves, once per leg
alone (that leg's weight 1, the others 0) and once with the fusion under test, so "hybrid vs
best single leg" is measured on the same store in the same run.

Output shape (``snapshop eval --json``): ``{"model", "profile", "image": {n, recall@1/5/10, mrr,
ndcg@10, by_type: {type: {...}}}, "text": {...}, "legs": {leg: {...}}, "variants": {...}}``, plus
``"judgements"`` when human marks were applied and ``"queries"`` (one record per query, for the
report) when asked for.

Human judgements (``app.evaluation.judgements``) refine the file's answers: a product a person
marked relevant joins the query's relevant set, one marked not relevant leaves it. Queries are
matched to marks by the same key the API records them under (normalised text, photo SHA-256).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.evaluation.judgements import image_key, text_key
from app.evaluation.metrics_table import summarise
from app.evaluation.queries import ImageQuery, TextQuery
from app.profiles.model import FusionSpec
from app.search.leg_names import IMAGE_INSTANCE, IMAGE_LEGS, LEGS, TEXT_LEGS
from app.search.query import SearchQuery
from app.search.schemas import SearchResult
from app.search.service import SearchService


def only(leg: str, base: FusionSpec) -> FusionSpec:
    """``base`` with every leg but ``leg`` switched off."""
    return base.model_copy(update={"weights": {name: float(name == leg) for name in LEGS}})


@dataclass(frozen=True)
class EvalQuery:
    """One query of either kind, ready to run, with its answers."""

    query_id: str
    kind: str  # "image" or "text"
    label: str  # the typed text, or the photo's file name
    relevant: frozenset[str]
    key: str  # the judgement key (see app.evaluation.judgements)
    text: str | None = None
    image: bytes | None = None
    image_path: Path | None = None  # where the photo came from, when it was a file
    query_type: str = "all"
    category: str = ""

    def search(
        self, k: int, spec: FusionSpec | None = None, profile: str | None = None
    ) -> SearchQuery:
        """The query under ``profile`` (its candidates, exact-match rule), blended by ``spec``."""
        return SearchQuery(text=self.text, image=self.image, k=k, fusion=spec, profile=profile)


def eval_queries(
    image_queries: Sequence[ImageQuery] = (), text_queries: Sequence[TextQuery] = ()
) -> list[EvalQuery]:
    out = []
    for q in image_queries:
        data = q.image.read_bytes()
        out.append(
            EvalQuery(
                q.query_id,
                "image",
                q.image.name,
                q.relevant,
                image_key(data),
                image=data,
                image_path=q.image,
                query_type=q.query_type or "all",
                category=q.category,
            )
        )
    out += [
        EvalQuery(q.query_id, "text", q.text, q.relevant, text_key(q.text), text=q.text)
        for q in text_queries
    ]
    return out


def apply_judgements(
    queries: Sequence[EvalQuery], qrels: Mapping[str, Mapping[str, bool]]
) -> tuple[list[EvalQuery], dict[str, int]]:
    """Queries with their relevant sets refined by human marks, and what changed.

    A query left with no relevant product at all (every answer marked not relevant) cannot be
    scored and is dropped, and counted as such.
    """
    stats = {"queries_judged": 0, "added": 0, "removed": 0, "dropped": 0}
    out = []
    for q in queries:
        marks = qrels.get(q.key, {})
        if marks:
            stats["queries_judged"] += 1
        yes = {pid for pid, ok in marks.items() if ok}
        no = {pid for pid, ok in marks.items() if not ok}
        relevant = (q.relevant | yes) - no
        stats["added"] += len(relevant - q.relevant)
        stats["removed"] += len(q.relevant - relevant)
        if not relevant:
            stats["dropped"] += 1
            continue
        out.append(replace(q, relevant=frozenset(relevant)))
    return out, stats


def _run(
    service: SearchService,
    queries: Sequence[EvalQuery],
    spec: FusionSpec,
    k: int,
    profile: str | None,
) -> tuple[list[list[SearchResult]], float]:
    results, started = [], time.perf_counter()
    for q in queries:
        results.append(service.search(q.search(k, spec, profile)).results)
    return results, (time.perf_counter() - started) * 1000 / max(len(queries), 1)


def _ids(results: Sequence[Sequence[SearchResult]]) -> list[list[str]]:
    return [[r.product_id for r in rs] for rs in results]


def _record(q: EvalQuery, results: Sequence[SearchResult]) -> dict[str, Any]:
    ranked = [r.product_id for r in results]
    return {
        "query_id": q.query_id,
        "kind": q.kind,
        "label": q.label,
        "image": str(q.image_path) if q.image_path is not None else None,
        "query_type": q.query_type,
        "category": q.category,
        "relevant": sorted(q.relevant),
        **summarise([ranked], [q.relevant]),
        "results": [
            {"product_id": r.product_id, "title": r.title, "category": r.category} for r in results
        ],
    }


def _lowest(records: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The ``n`` queries that did worst; a query that scored full marks is never listed."""
    failing = [r for r in records if r["ndcg@10"] < 1.0]
    return sorted(failing, key=lambda r: (r["ndcg@10"], r["mrr"], r["query_id"]))[:n]


def evaluate_search(
    service: SearchService,
    queries: Sequence[EvalQuery],
    fusions: dict[str, FusionSpec] | None = None,
    profile: str | None = None,
    k: int = 10,
    judgements: Mapping[str, Mapping[str, bool]] | None = None,
    per_query: bool = False,
    worst: int = 0,
) -> dict[str, Any]:
    """Per query type: the profile's fusion (and any extra ``fusions``), and each leg alone.

    ``worst``: also list that many lowest-scoring queries (nDCG@10, then MRR) of the profile's
    fusion (``"worst"``) and of each extra fusion (``variants[label]["worst"]``).

    ``queries`` come from query files (``eval_queries``) or a stored set (``QuerySetStore``).
    """
    chosen = service.profile(profile)
    base = chosen.spec()
    out: dict[str, Any] = {
        "model": service.encoder.model_id,
        "profile": f"{chosen.name}@{chosen.version}",
        "fusion": base.model_dump(),
        "legs": {},
    }
    if judgements is not None:
        queries, out["judgements"] = apply_judgements(queries, judgements)
    variants: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    worst_records: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for kind, legs in (("image", IMAGE_LEGS), ("text", TEXT_LEGS)):
        subset = [q for q in queries if q.kind == kind]
        if not subset:
            continue
        relevant = [q.relevant for q in subset]
        results, ms = _run(service, subset, base, k, profile)
        ranked = _ids(results)
        block = {**summarise(ranked, relevant), "ms_per_query": round(ms, 1)}
        by_type: dict[str, list[int]] = defaultdict(list)
        for i, q in enumerate(subset):
            by_type[q.query_type].append(i)
        if len(by_type) > 1 or kind == "image":
            block["by_type"] = {
                t: summarise([ranked[i] for i in idx], [relevant[i] for i in idx])
                for t, idx in sorted(by_type.items())
            }
        out[kind] = block
        if per_query or worst:
            mine = [_record(q, rs) for q, rs in zip(subset, results, strict=True)]
            records += mine if per_query else []
            worst_records[None] += mine
        for leg in legs:
            if leg == IMAGE_INSTANCE and not service.has_instance():
                continue  # a model or store without instance vectors has no such leg
            leg_results, leg_ms = _run(service, subset, only(leg, base), k, profile)
            out["legs"][leg] = {
                "queries": kind,
                **summarise(_ids(leg_results), relevant),
                "ms_per_query": round(leg_ms, 1),
            }
        for label, spec in (fusions or {}).items():
            v_results, v_ms = _run(service, subset, spec, k, profile)
            variants.setdefault(label, {})[kind] = {
                **summarise(_ids(v_results), relevant),
                "ms_per_query": round(v_ms, 1),
            }
            if worst:
                worst_records[label] += [
                    _record(q, rs) for q, rs in zip(subset, v_results, strict=True)
                ]
    if worst:
        out["worst"] = _lowest(worst_records[None], worst)
        for label in variants:
            variants[label]["worst"] = _lowest(worst_records[label], worst)
    if variants:
        out["variants"] = variants
    if per_query:
        out["queries"] = records
    return out
