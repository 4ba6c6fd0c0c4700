"""Query sets in the format of ``shared/catalog/dev_queries``.

``image_queries.csv``: query_id, query_image (path relative to the CSV's folder), query_type,
relevant_product_ids (``;``-separated), relevant_category.
``text_queries.csv``: query_id, query, relevant_product_ids, match_rule.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class QueryFileError(ValueError):
    """A query file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class ImageQuery:
    query_id: str
    image: Path
    relevant: frozenset[str]
    query_type: str = ""
    category: str = ""  # relevant_category: the answer's category path, when the file gives it


@dataclass(frozen=True)
class TextQuery:
    query_id: str
    text: str
    relevant: frozenset[str]


def _read(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise QueryFileError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise QueryFileError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = [
            (reader.line_num, {k: (v or "").strip() for k, v in r.items() if k}) for r in reader
        ]
    for line, row in rows:
        if not row.get("query_id"):
            raise QueryFileError(f"{path}:{line}: missing query_id")
        if not row.get("relevant_product_ids"):
            raise QueryFileError(f"{path}:{line}: no relevant_product_ids")
    return rows


def _ids(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(";") if v.strip())


def read_image_queries(path: Path) -> list[ImageQuery]:
    rows = _read(path, ("query_id", "query_image", "relevant_product_ids"))
    out = []
    for line, row in rows:
        image = path.parent / row["query_image"]
        if not image.is_file():
            raise QueryFileError(f"{path}:{line}: image {row['query_image']} not found")
        out.append(
            ImageQuery(
                row["query_id"],
                image,
                _ids(row["relevant_product_ids"]),
                row.get("query_type", ""),
                row.get("relevant_category", ""),
            )
        )
    return out


def read_text_queries(path: Path) -> list[TextQuery]:
    rows = _read(path, ("query_id", "query", "relevant_product_ids"))
    out = []
    for line, row in rows:
        if not row["query"]:
            raise QueryFileError(f"{path}:{line}: empty query")
        out.append(TextQuery(row["query_id"], row["query"], _ids(row["relevant_product_ids"])))
    return out


def split_one_per_product(
    queries: Sequence[ImageQuery], seed: int = 0
) -> tuple[list[ImageQuery], list[ImageQuery]]:
    """(train, held_out): one photo per product is held out, chosen by a seeded hash.

    The choice depends only on the seed and the query ids, so a model trained on ``train``
    and an evaluation on ``held_out`` agree on the split without sharing state.
    """

    def order(q: ImageQuery) -> str:
        return hashlib.sha1(f"{seed}:{q.query_id}".encode()).hexdigest()

    by_product: dict[str, list[ImageQuery]] = {}
    for q in queries:
        by_product.setdefault(min(q.relevant), []).append(q)
    held = {min(group, key=order).query_id for group in by_product.values() if len(group) > 1}
    train = [q for q in queries if q.query_id not in held]
    return train, [q for q in queries if q.query_id in held]
