"""Vector store: one protocol, one backend per engine."""

from app.store.base import (
    BM25_VECTOR,
    DENSE_VECTORS,
    IMAGE_VECTOR,
    TEXT_VECTOR,
    Hit,
    IndexStatus,
    PointRecord,
    SearchFilter,
    StoreError,
    StoreInfo,
    VectorStore,
    attribute_term,
    category_ancestors,
    normalise_category,
    point_id,
)
from app.store.edge import EdgeStore

__all__ = [
    "BM25_VECTOR",
    "DENSE_VECTORS",
    "IMAGE_VECTOR",
    "TEXT_VECTOR",
    "EdgeStore",
    "Hit",
    "IndexStatus",
    "PointRecord",
    "SearchFilter",
    "StoreError",
    "StoreInfo",
    "VectorStore",
    "attribute_term",
    "category_ancestors",
    "normalise_category",
    "point_id",
]
