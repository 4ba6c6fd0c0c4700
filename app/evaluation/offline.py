"""Offline re-fusion: run each query's legs once, then score any fusion over the cached lists.

Tuning and weight sweeps try hundreds of fusions; running the legs again for each would cost a
full search per query per fusion. The legs' product lists do not depend on the weights, so they
are fetched once (``SearchService.leg_lists``) and re-fused with ``app.search.ranking.fuse_legs``,
the function the service itself ranks with. A test checks that this gives the service's order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.evaluation.metrics_table import metric as metric_fn
from app.evaluation.search import EvalQuery
from app.profiles.model import FusionSpec
from app.search.query import SearchQuery
from app.search.ranking import LegList, fuse_legs
from app.search.service import SearchService

# Results a shopper sees on the first page; ``rank`` cuts there, so every metric (mrr included)
# is taken at or within it.
CUTOFF = 10


@dataclass(frozen=True)
class CachedQuery:
    query_id: str
    kind: str  # "image" or "text"
    relevant: frozenset[str]
    lists: Mapping[str, LegList]
    # The exact-match rule's cosines (the whole photo's), per image leg and product.
    judged: Mapping[str, Mapping[str, float]] | None = None


# ndcg@10 first: the default objective of tuning.
METRICS = ("ndcg@10", "recall@1", "recall@5", "recall@10", "mrr")


def collect(
    service: SearchService, queries: Iterable[EvalQuery], profile: str | None = None
) -> list[CachedQuery]:
    """Each query's leg lists, fetched once through the service (its filters, floors, limits)."""
    out: list[CachedQuery] = []
    for q in queries:
        lists, judged = service.leg_lists(SearchQuery(text=q.text, image=q.image, profile=profile))
        out.append(CachedQuery(q.query_id, q.kind, q.relevant, lists, judged))
    return out


def rank(query: CachedQuery, spec: FusionSpec, exact_match: float | None = None) -> list[str]:
    """The first page ``service.search`` would return for this fusion (product ids)."""
    if not spec.active(query.lists):
        return []  # the service refuses such a query; as a ranking it finds nothing
    fused, _ = fuse_legs(query.lists, spec, exact_match, query.judged)
    return [f.item for f in fused[:CUTOFF]]


def per_query(
    queries: Sequence[CachedQuery],
    spec: FusionSpec,
    exact_match: float | None = None,
    metric: str = "ndcg@10",
) -> np.ndarray:
    fn = metric_fn(metric, METRICS)
    return np.array([fn(rank(q, spec, exact_match), q.relevant) for q in queries], dtype=float)


def score(
    queries: Sequence[CachedQuery],
    spec: FusionSpec,
    exact_match: float | None = None,
    metric: str = "ndcg@10",
) -> float:
    """Mean of ``metric`` over ``queries`` (0 for none)."""
    values = per_query(queries, spec, exact_match, metric)
    return float(values.mean()) if len(values) else 0.0


WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def sweep(
    queries: Sequence[CachedQuery],
    base: FusionSpec,
    legs: Sequence[str],
    exact_match: float | None = None,
    metric: str = "ndcg@10",
    grid: Sequence[float] = WEIGHT_GRID,
) -> dict[str, list[tuple[float, float]]]:
    """Per leg: ``metric`` as that leg's weight moves over ``grid``, the others held at ``base``.

    The weight in use is always one of the points, so a plot can mark where the profile sits.
    """
    out: dict[str, list[tuple[float, float]]] = {}
    for leg in legs:
        curve = []
        for w in sorted({*grid, base.weight(leg)}):
            spec = base.model_copy(update={"weights": {**base.weights, leg: w}})
            curve.append((float(w), round(score(queries, spec, exact_match, metric), 4)))
        out[leg] = curve
    return out
