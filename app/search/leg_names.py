"""The search legs' names: search's own vocabulary, as responses, weights and floors spell them.

Each leg pairs a query input with a stored vector (or BM25). A leg name is not a vector name:
the store's vectors are ``app.store.IMAGE_VECTOR``/``TEXT_VECTOR``; the strings happen to
overlap (``"image"``) and stay as they are, because saved profiles and clients use them.
This module imports nothing, so profiles (and anything else) can use it without a cycle.
"""

from __future__ import annotations

IMAGE_TO_IMAGE = "image"  # query photo → catalog photos
IMAGE_TO_TEXT = "image_text"  # query photo → product texts
IMAGE_INSTANCE = "image_instance"  # query photo → catalog photos, by the identity embedding
TEXT_TO_IMAGE = "text_image"  # typed query → catalog photos
TEXT_TO_TEXT = "text_text"  # typed query → product texts
BM25 = "bm25"  # typed query → product texts, by keyword
LEGS = (IMAGE_TO_IMAGE, IMAGE_TO_TEXT, IMAGE_INSTANCE, TEXT_TO_IMAGE, TEXT_TO_TEXT, BM25)
# The legs a photo allows; ``image_instance`` only where the store holds instance vectors.
IMAGE_LEGS = (IMAGE_TO_IMAGE, IMAGE_TO_TEXT, IMAGE_INSTANCE)
TEXT_LEGS = (TEXT_TO_IMAGE, TEXT_TO_TEXT, BM25)  # the legs a typed query allows
# Legs whose hits are a specific catalog photo: only these say which of a product's images matched.
IMAGE_VECTOR_LEGS = (IMAGE_TO_IMAGE, IMAGE_INSTANCE, TEXT_TO_IMAGE)

__all__ = [
    "BM25",
    "IMAGE_INSTANCE",
    "IMAGE_LEGS",
    "IMAGE_TO_IMAGE",
    "IMAGE_TO_TEXT",
    "IMAGE_VECTOR_LEGS",
    "LEGS",
    "TEXT_LEGS",
    "TEXT_TO_IMAGE",
    "TEXT_TO_TEXT",
]
