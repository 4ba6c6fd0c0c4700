"""qdrant-client query parts for ``QdrantServerStore``: filters and hits (``edge_query``'s twin)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qdrant_client import models

from app.store.base import Hit, PayloadSelection, SearchFilter, attribute_term, category_ancestors
from app.store.fields import ATTRIBUTE_TERMS, CATEGORY, PRICE, PRODUCT_ID


def server_filter(flt: SearchFilter | None) -> models.Filter | None:
    """The server's filter for ``flt`` (None when it restricts nothing): the same conditions
    as ``edge_query.engine_filter``, on the same payload indexes."""
    if flt is None or flt.empty:
        return None
    must: list[Any] = []
    must_not: list[Any] = []
    if flt.category:
        path = category_ancestors(flt.category)[-1]
        must.append(models.FieldCondition(key=CATEGORY, match=models.MatchValue(value=path)))
    if flt.price_min is not None or flt.price_max is not None:
        price = models.Range(gte=flt.price_min, lte=flt.price_max)
        must.append(models.FieldCondition(key=PRICE, range=price))
    for name, value in flt.attributes:
        term = models.MatchValue(value=attribute_term(name, value))
        must.append(models.FieldCondition(key=ATTRIBUTE_TERMS, match=term))
    if flt.exclude_products:
        excluded = models.MatchAny(any=list(flt.exclude_products))
        must_not.append(models.FieldCondition(key=PRODUCT_ID, match=excluded))
    return models.Filter(must=must or None, must_not=must_not or None)


def product_filter(product_id: str) -> models.Filter:
    match = models.MatchValue(value=product_id)
    return models.Filter(must=[models.FieldCondition(key=PRODUCT_ID, match=match)])


def ids_filter(ids: Sequence[str]) -> models.Filter:
    return models.Filter(must=[models.HasIdCondition(has_id=list(ids))])


def payload_selector(selected: PayloadSelection) -> bool | list[str]:
    return selected if isinstance(selected, bool) else list(selected)


def to_hits(points: Sequence[models.ScoredPoint | models.Record]) -> list[Hit]:
    """The server's points as ``Hit``s (records, which have no score, score 0)."""
    return [
        Hit(id=str(p.id), score=float(getattr(p, "score", 0.0)), payload=dict(p.payload or {}))
        for p in points
    ]
