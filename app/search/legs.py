"""Retrieval legs: each turns one query input into a ranked list of catalog points, raw scores on.

Every leg applies the request's filter and its score floor inside the engine, so a floor
never lets a filtered-out point back in, and a filter never lowers what a floor keeps. Hits carry
only the payload fields that grouping and results use (``HIT_FIELDS``).
"""

from __future__ import annotations

import numpy as np

from app.store import (
    IMAGE_VECTOR,
    INSTANCE_VECTOR,
    TEXT_VECTOR,
    DenseQuery,
    Hit,
    SearchFilter,
    VectorStore,
)
from app.store.fields import HIT_FIELDS

__all__ = [
    "bm25",
    "dense_query",
    "image_instance",
    "image_to_image",
    "image_to_text",
    "text_to_image",
    "text_to_text",
]


def image_to_image(
    store: VectorStore,
    image_vec: np.ndarray,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None = None,
) -> list[Hit]:
    """Query photo against catalog photos (image tower on both sides)."""
    return store.search_dense(
        image_vec, limit, flt, using=IMAGE_VECTOR, min_score=min_score, with_payload=HIT_FIELDS
    )


def image_instance(
    store: VectorStore,
    instance_vec: np.ndarray,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None = None,
) -> list[Hit]:
    """Query photo against catalog photos by the identity embedding: the very product, re-shot.

    Each catalog image is its own point, so a product with several photos matches on any of
    them (grouping by product keeps its best).
    """
    return store.search_dense(
        instance_vec,
        limit,
        flt,
        using=INSTANCE_VECTOR,
        min_score=min_score,
        with_payload=HIT_FIELDS,
    )


def image_to_text(
    store: VectorStore,
    image_vec: np.ndarray,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None = None,
) -> list[Hit]:
    """Query photo against the products' text embeddings (the towers share one space).

    Robust when the catalog photo is a studio shot and the query a shelf snapshot: the text
    names what the item is, whatever the picture looks like.
    """
    return store.search_dense(
        image_vec, limit, flt, using=TEXT_VECTOR, min_score=min_score, with_payload=HIT_FIELDS
    )


def text_to_image(
    store: VectorStore,
    text_vec: np.ndarray,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None = None,
) -> list[Hit]:
    """Typed query (text tower) against catalog photos."""
    return store.search_dense(
        text_vec, limit, flt, using=IMAGE_VECTOR, min_score=min_score, with_payload=HIT_FIELDS
    )


def text_to_text(
    store: VectorStore,
    text_vec: np.ndarray,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None = None,
) -> list[Hit]:
    """Typed query against the products' text embeddings: synonyms and paraphrases match."""
    return store.search_dense(
        text_vec, limit, flt, using=TEXT_VECTOR, min_score=min_score, with_payload=HIT_FIELDS
    )


def bm25(
    store: VectorStore,
    text: str,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None = None,
) -> list[Hit]:
    """Keyword match over the products' text, inside the engine (exact terms, SKUs, brands)."""
    return store.search_bm25(text, limit, flt, min_score=min_score, with_payload=HIT_FIELDS)


def dense_query(
    vector: np.ndarray,
    limit: int,
    flt: SearchFilter | None,
    using: str,
    min_score: float | None = None,
) -> DenseQuery:
    """A vector leg as a query, for ``search_batch``: hits with ``HIT_FIELDS`` only."""
    return DenseQuery(vector, limit, flt, using, min_score, with_payload=HIT_FIELDS)
