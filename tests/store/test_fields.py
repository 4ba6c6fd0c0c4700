"""The payload field names: one list, the TypedDict ingestion writes, and what ingestion writes."""

from __future__ import annotations

from pathlib import Path
from typing import get_type_hints

from app.store import fields
from ingestion.catalog import read_catalog
from ingestion.documents import point_record


def _named() -> set[str]:
    return {
        value for name, value in vars(fields).items() if name.isupper() and isinstance(value, str)
    }


def test_the_names_and_the_typed_payload_are_the_same_fields() -> None:
    assert _named() == set(get_type_hints(fields.ImagePayload))
    grouped = {*fields.KEYWORD_FIELDS, *fields.INTEGER_FIELDS, *fields.FLOAT_FIELDS}
    assert grouped | set(fields.HIT_FIELDS) | set(fields.SYNC_FIELDS) <= _named()
    assert fields.DESCRIPTION not in fields.HIT_FIELDS  # the bulk of a payload stays behind


def test_ingestion_writes_only_named_fields(mini_catalog: Path) -> None:
    catalog = read_catalog(mini_catalog)
    written: set[str] = set()
    for product in catalog.products[:10]:
        name = product.image_files[0]
        record = point_record(product, name, catalog.image_path(name), "h", [0.0], [0.0])
        written |= set(record.payload)
    assert written <= _named()
    assert {fields.PRODUCT_ID, fields.CATEGORY, fields.CONTENT_HASH, fields.IMAGES} <= written
