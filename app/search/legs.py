"""Retrieval legs: each turns one query input into a ranked list of catalog points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.store import IMAGE_VECTOR, TEXT_VECTOR, Hit, SearchFilter, VectorStore

IMAGE_TO_IMAGE = "image"
IMAGE_TO_TEXT = "image_text"
TEXT_TO_IMAGE = "text_image"
TEXT_TO_TEXT = "text_text"
BM25 = "bm25"


@dataclass(frozen=True)
class LegResult:
    name: str
    hits: list[Hit]
    ms: float


def image_to_image(
    store: VectorStore, image_vec: np.ndarray, limit: int, flt: SearchFilter | None
) -> list[Hit]:
    """Query photo against catalog photos (image tower on both sides)."""
    return store.search_dense(image_vec, limit, flt, using=IMAGE_VECTOR)


def image_to_text(
    store: VectorStore, image_vec: np.ndarray, limit: int, flt: SearchFilter | None
) -> list[Hit]:
    """Query photo against the products' text embeddings: robust when the catalog photo is
    a studio shot and the query a shelf snapshot, since the text names what the item is."""
    return store.search_dense(image_vec, limit, flt, using=TEXT_VECTOR)


def text_to_image(
    store: VectorStore, text_vec: np.ndarray, limit: int, flt: SearchFilter | None
) -> list[Hit]:
    """Typed query (text tower) against catalog photos: the towers share one space."""
    return store.search_dense(text_vec, limit, flt, using=IMAGE_VECTOR)


def text_to_text(
    store: VectorStore, text_vec: np.ndarray, limit: int, flt: SearchFilter | None
) -> list[Hit]:
    """Typed query against the products' text embeddings (dense: synonyms, no exact terms)."""
    return store.search_dense(text_vec, limit, flt, using=TEXT_VECTOR)


def bm25(store: VectorStore, text: str, limit: int, flt: SearchFilter | None) -> list[Hit]:
    """Keyword match over the products' text, inside the engine."""
    return store.search_bm25(text, limit, flt)
