"""What the store keeps for a catalog image: its payload and the text the BM25 leg indexes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.store import PointRecord, attribute_term, category_ancestors, point_id
from app.store.fields import YEAR, ImagePayload
from ingestion.catalog import CatalogProduct


def product_text(product: CatalogProduct) -> str:
    """Text the keyword leg matches: title, category path, attributes and description."""
    parts = [product.title, product.category.replace("/", " ")]
    parts += [v for k, v in product.attributes.items() if k != YEAR]
    if product.description:
        parts.append(product.description)
    return " ".join(p for p in parts if p)


def image_payload(product: CatalogProduct, image_file: str, image_path: Path) -> ImagePayload:
    """The payload of one catalog image (``app.store.fields`` names its fields)."""
    payload: ImagePayload = {
        "product_id": product.product_id,
        "title": product.title,
        "category": category_ancestors(product.category),
        "category_path": product.category,
        "description": product.description,
        "image_file": image_file,
        "image_path": str(image_path.resolve()),
        "images": list(product.image_files),
        # Nested so that an attribute can never shadow a field of ours; filters address
        # them as ``attributes.<name>``.
        "attributes": {k: v for k, v in product.attributes.items() if k != YEAR},
        "attribute_terms": [attribute_term(k, v) for k, v in product.attributes.items()],
    }
    if product.price is not None:
        payload["price"] = product.price
    year = product.attributes.get(YEAR, "")
    if year.isdigit():  # numeric so that range filters and the integer index work
        payload["year"] = int(year)
    return payload


def point_record(
    product: CatalogProduct,
    image_file: str,
    image_path: Path,
    content_hash: str,
    image_vector: np.ndarray,
    text_vector: np.ndarray,
    instance_vector: np.ndarray | None = None,
) -> PointRecord:
    """The point of one catalog image: its vectors, the BM25 text and the payload.

    ``instance_vector``: the photo's identity embedding, where the model has one.

    ``content_hash`` is the product's (see ``pipeline.product_hash``): a re-run compares it to
    decide whether the point must be written again.
    """
    payload = image_payload(product, image_file, image_path)
    payload["content_hash"] = content_hash
    return PointRecord(
        id=point_id(product.product_id, image_file),
        image_vector=image_vector,
        text_vector=text_vector,
        text=product_text(product),
        payload=dict(payload),
        instance_vector=instance_vector,
    )
