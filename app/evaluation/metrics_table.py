"""Metric tables: each ranking metric's mean over a set of queries, under its reported name.

``reranker.metrics`` scores one ranking; this module names those scores ("recall@10", "mrr"...)
and averages them. Service evaluation, offline re-fusion and embedding evaluation all take their
tables from here, so a metric is defined, named and averaged in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from reranker.metrics import mrr, ndcg_at_k, recall_at_k

MetricFn = Callable[[Sequence[str], frozenset[str]], float]

# In the order every table shows them (eval --json, the report).
METRIC_FUNCTIONS: Mapping[str, MetricFn] = {
    "recall@1": lambda r, q: recall_at_k(r, q, 1),
    "recall@5": lambda r, q: recall_at_k(r, q, 5),
    "recall@10": lambda r, q: recall_at_k(r, q, 10),
    "mrr": lambda r, q: mrr(r, q),
    "ndcg@10": lambda r, q: ndcg_at_k(r, q, 10),
}
METRIC_NAMES = tuple(METRIC_FUNCTIONS)


def metric(name: str, allowed: Sequence[str] = METRIC_NAMES) -> MetricFn:
    """The per-query function of ``name``; ``ValueError`` unless it is one of ``allowed``."""
    if name not in allowed:
        raise ValueError(f"unknown metric {name!r}; one of {', '.join(allowed)}")
    return METRIC_FUNCTIONS[name]


def summarise(
    ranked: Sequence[Sequence[str]],
    relevant: Sequence[frozenset[str]],
    names: Sequence[str] = METRIC_NAMES,
    digits: int | None = 4,
) -> dict[str, Any]:
    """``{"n": queries, name: mean over queries, ...}`` (ranks from 1, binary relevance).

    Means are rounded to ``digits`` places for display (``None``: unrounded); 0 for no queries.
    """
    pairs = list(zip(ranked, relevant, strict=True))
    table: dict[str, Any] = {"n": len(pairs)}
    for name in names:
        fn = metric(name)
        values = [fn(r, q) for r, q in pairs]
        mean = float(np.mean(values)) if values else 0.0
        table[name] = round(mean, digits) if digits is not None else mean
    return table
