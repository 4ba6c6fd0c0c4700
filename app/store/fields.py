"""The payload of a catalog point: every field name in one typed place.

Ingestion writes ``ImagePayload``; the backends index the fields named in ``KEYWORD_FIELDS``
and the numeric tuples; the search legs ask only for ``HIT_FIELDS``. A test keeps the names
below and the TypedDict's keys the same.
"""

from __future__ import annotations

from typing import Final, TypedDict

PRODUCT_ID: Final = "product_id"
TITLE: Final = "title"
CATEGORY: Final = "category"  # the path and every ancestor, lower case: one keyword per level
CATEGORY_PATH: Final = "category_path"  # the catalog's own spelling
DESCRIPTION: Final = "description"
IMAGE_FILE: Final = "image_file"
IMAGE_PATH: Final = "image_path"
IMAGES: Final = "images"  # every image file of the product, in catalog order
ATTRIBUTES: Final = "attributes"
ATTRIBUTE_TERMS: Final = "attribute_terms"  # ``name=value`` keywords (``attribute_term``)
PRICE: Final = "price"
YEAR: Final = "year"
CONTENT_HASH: Final = "content_hash"  # the product's hash: a re-ingest skips what matches


class ImagePayload(TypedDict, total=False):
    """What the store keeps with each catalog image (``price``/``year`` only when known)."""

    product_id: str
    title: str
    category: list[str]
    category_path: str
    description: str
    image_file: str
    image_path: str
    images: list[str]
    attributes: dict[str, str]
    attribute_terms: list[str]
    price: float
    year: int
    content_hash: str


# Payload indexes, by type: what filters and facets address.
KEYWORD_FIELDS: Final = (PRODUCT_ID, CATEGORY, ATTRIBUTE_TERMS)
INTEGER_FIELDS: Final = (YEAR,)
FLOAT_FIELDS: Final = (PRICE,)

# What a leg's hit carries: grouping by product, which photo matched, and the category (votes,
# facets). A leg fetches up to a thousand hits, so the rest of a result (``PAGE_FIELDS``) is
# fetched once per answer, for the page's hits only.
HIT_FIELDS: Final = (PRODUCT_ID, IMAGE_FILE, CATEGORY_PATH)
PAGE_FIELDS: Final = (IMAGES, TITLE, PRICE)
# What ingest compares a catalog against.
SYNC_FIELDS: Final = (PRODUCT_ID, CONTENT_HASH)
