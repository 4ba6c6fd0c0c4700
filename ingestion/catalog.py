"""Reading a catalog folder: ``products.csv`` + ``images/`` (the format of ``shared/catalog``).

Columns: product_id, title, category (a ``/`` path), attribute columns, description and
image_files (``;``-separated names relative to ``images/``). Empty string means unknown.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PRODUCTS_FILE = "products.csv"
IMAGES_DIR = "images"
REQUIRED_COLUMNS = ("product_id", "title", "image_files")
ATTRIBUTE_COLUMNS = (
    "master_category",
    "sub_category",
    "article_type",
    "color",
    "gender",
    "season",
    "year",
    "usage",
)


class CatalogError(ValueError):
    """The catalog as a whole cannot be read (missing file, missing columns)."""


@dataclass(frozen=True)
class Product:
    product_id: str
    title: str
    category: str
    description: str
    attributes: dict[str, str]
    image_files: tuple[str, ...]
    row: int  # 1-based line number in products.csv (header = line 1), for error messages


@dataclass(frozen=True)
class Reject:
    """Something that was not ingested, and why, precisely enough for a person to fix it."""

    source: str  # "<file>:<line>" or an image path
    product_id: str
    reason: str


@dataclass
class Catalog:
    root: Path
    products: list[Product] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def image_path(self, image_file: str) -> Path:
        return self.root / IMAGES_DIR / image_file


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CatalogError(f"{path}: missing column(s) {', '.join(missing)}")
        for row in reader:
            # DictReader's line_num is the physical line just read (quoted newlines included).
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}


def read_catalog(root: Path) -> Catalog:
    """Parse the catalog; bad rows become ``Reject``s, good rows ``Product``s (files not opened)."""
    csv_path = root / PRODUCTS_FILE
    if not csv_path.is_file():
        raise CatalogError(f"{root}: no {PRODUCTS_FILE} (expected products.csv + images/)")
    catalog = Catalog(root=root)
    seen: dict[str, int] = {}
    for line, row in _rows(csv_path):
        source = f"{csv_path}:{line}"
        pid = row.get("product_id", "")
        problem = None
        if not pid:
            problem = "missing product_id"
        elif pid in seen:
            problem = f"duplicate product_id (first seen on line {seen[pid]})"
        elif not row.get("title"):
            problem = "missing title"
        files = tuple(f.strip() for f in row.get("image_files", "").split(";") if f.strip())
        if problem is None and not files:
            problem = "no image_files listed"
        if problem is not None:
            catalog.rejects.append(Reject(source, pid, problem))
            continue
        seen[pid] = line
        catalog.products.append(
            Product(
                product_id=pid,
                title=row["title"],
                category=row.get("category", ""),
                description=row.get("description", ""),
                attributes={c: row[c] for c in ATTRIBUTE_COLUMNS if row.get(c)},
                image_files=files,
                row=line,
            )
        )
    return catalog
