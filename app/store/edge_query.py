"""qdrant-edge query parts for ``EdgeStore``: the engine filter of a ``SearchFilter``, and hits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import qdrant_edge as qe

from app.store.base import Hit, SearchFilter, attribute_term, category_ancestors
from app.store.fields import ATTRIBUTE_TERMS, CATEGORY, PRICE, PRODUCT_ID


def engine_filter(flt: SearchFilter | None) -> qe.Filter | None:
    """The engine's filter for ``flt`` (None when it restricts nothing)."""
    if flt is None or flt.empty:
        return None
    must: list[Any] = []
    must_not: list[Any] = []
    if flt.category:
        ancestors = category_ancestors(flt.category)
        must.append(qe.FieldCondition(CATEGORY, match=qe.MatchValue(ancestors[-1])))
    if flt.price_min is not None or flt.price_max is not None:
        price = qe.RangeFloat(gte=flt.price_min, lte=flt.price_max)
        must.append(qe.FieldCondition(PRICE, range=price))
    for name, value in flt.attributes:
        term = attribute_term(name, value)
        must.append(qe.FieldCondition(ATTRIBUTE_TERMS, match=qe.MatchValue(term)))
    if flt.exclude_products:
        excluded = qe.MatchAny(list(flt.exclude_products))
        must_not.append(qe.FieldCondition(PRODUCT_ID, match=excluded))
    return qe.Filter(must=must or None, must_not=must_not or None)


def to_hits(points: Sequence[qe.ScoredPoint]) -> list[Hit]:
    """The engine's scored points as ``Hit``s, payloads copied."""
    return [Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in points]
