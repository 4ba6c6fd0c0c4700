"""Reading a catalog folder: ``products.csv`` or ``products.jsonl``, plus the images it names.

The column mapping (the same field names in both formats; see docs/catalog-format.md):

- ``product_id`` (required): the shop's id, at most 256 characters.
- ``title`` (required).
- ``description``, ``category`` (a ``/`` path such as ``Apparel/Topwear/Shirts``).
- ``price``: a non-negative number, or empty for unknown.
- ``image_files`` (required): ``;``-separated in CSV, a list or a ``;`` string in JSONL. Paths are
  relative to the folder; a bare name is first looked up in ``images/`` (the shared catalog's
  layout). Absolute paths and paths leaving the folder are refused.
- ``attributes``: in CSV, every other column (``color``, ``gender``, ``year``...); in JSONL, an
  ``attributes`` object, and any other scalar field. ``year``, when given, must be a whole number.

Empty string means unknown. Rows are validated here, without opening images (the ingest pipeline
checks those while decoding); a bad row becomes a ``Reject`` with its file, line and reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ingestion.sources import SourceFileError, SourceRow, csv_rows, jsonl_rows

PRODUCTS_CSV = "products.csv"
PRODUCTS_JSONL = "products.jsonl"
IMAGES_DIR = "images"
CORE_FIELDS = ("product_id", "title", "description", "category", "price", "image_files")
REQUIRED_FIELDS = ("product_id", "title", "image_files")
# In JSONL ``attributes`` is the object of attributes; a CSV column of that name is ambiguous.
RESERVED_NAMES = frozenset({"attributes"})
# The one limit on a product id: what the catalog accepts, judgements accept too.
MAX_ID_CHARS = 256
MAX_TITLE_CHARS = 1_000
MAX_TEXT_CHARS = 20_000  # description; a whole page pasted in is a mistake, not a product
MAX_IMAGES = 64


class CatalogError(ValueError):
    """The catalog as a whole cannot be read (missing file, missing columns)."""


@dataclass(frozen=True)
class CatalogProduct:
    """One valid row of the catalog (not the API's ``app.search.schemas.Product``)."""

    product_id: str
    title: str
    category: str
    description: str
    attributes: dict[str, str]
    image_files: tuple[str, ...]
    row: int  # 1-based line number in the products file (CSV header = line 1), for messages
    price: float | None = None


@dataclass(frozen=True)
class Reject:
    """Something that was not ingested, and why, precisely enough for a person to fix it."""

    source: str  # "<file>:<line>" or an image path
    product_id: str
    reason: str


@dataclass
class Catalog:
    root: Path
    products: list[CatalogProduct] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def image_path(self, image_file: str) -> Path:
        """Where an ``image_files`` entry lives: ``images/<name>`` if there, else ``<root>/<name>``.

        Bare names resolve under ``images/`` as in the shared catalog layout.
        """
        in_images = self.root / IMAGES_DIR / image_file
        if in_images.exists() or not (self.root / image_file).exists():
            return in_images
        return self.root / image_file


def products_file(root: Path) -> Path:
    """The catalog's products file; exactly one of the two formats must be present."""
    found = [root / name for name in (PRODUCTS_CSV, PRODUCTS_JSONL) if (root / name).is_file()]
    if not found:
        raise CatalogError(
            f"{root}: no {PRODUCTS_CSV} or {PRODUCTS_JSONL} (expected a products file + images)"
        )
    if len(found) > 1:
        raise CatalogError(
            f"{root}: both {PRODUCTS_CSV} and {PRODUCTS_JSONL} are present; keep one of them"
        )
    return found[0]


def _rows(path: Path) -> Iterator[SourceRow]:
    if path.suffix == ".jsonl":
        return jsonl_rows(path)
    return csv_rows(path, REQUIRED_FIELDS, RESERVED_NAMES)


def _has_control_chars(value: str) -> bool:
    # Tabs and newlines are legitimate in descriptions; NUL and other C0 controls are corruption.
    return any(ord(c) < 32 and c not in "\t\n\r" for c in value)


def _image_files(value: Any) -> tuple[str, ...] | str:
    if isinstance(value, str):
        parts = value.split(";")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = value
    else:
        return "image_files must be a ';'-separated string or a list of strings"
    files: list[str] = []
    for raw in parts:
        name = raw.strip()
        if not name or name in files:
            continue  # a doubled entry would map to the same point; keep the first
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
            return f"image path {name!r} is absolute; give it relative to the catalog folder"
        if ".." in pure.parts:
            return f"image path {name!r} leaves the catalog folder"
        files.append(name)
    if not files:
        return "no image_files listed"
    if len(files) > MAX_IMAGES:
        return f"{len(files)} images listed; at most {MAX_IMAGES} per product"
    return tuple(files)


def _price(value: Any) -> float | str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return f"price {value!r} is not a number"
    try:
        price = float(value)
    except (TypeError, ValueError):
        return f"price {value!r} is not a number"
    if not math.isfinite(price):
        return f"price {value!r} is not a finite number"
    if price < 0:
        return f"price {value!r} is negative"
    return price


def _scalar(value: Any) -> str | None:
    """A field value as text; ``None`` for types a field cannot hold (objects, lists)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    return None


def validate_row(fields: Mapping[str, Any], line: int) -> CatalogProduct | str:
    """A ``CatalogProduct`` from one row's fields, or the reason the row cannot be used."""
    text: dict[str, str] = {}
    for name in ("product_id", "title", "description", "category"):
        value = _scalar(fields.get(name))
        if value is None:
            return f"{name} must be text, not {type(fields.get(name)).__name__}"
        if _has_control_chars(value):
            return f"{name} contains control characters"
        text[name] = value
    pid = text["product_id"]
    if not pid:
        return "missing product_id"
    if len(pid) > MAX_ID_CHARS:
        return f"product_id is {len(pid)} characters; at most {MAX_ID_CHARS}"
    if not text["title"]:
        return "missing title"
    if len(text["title"]) > MAX_TITLE_CHARS:
        return f"title is {len(text['title'])} characters; at most {MAX_TITLE_CHARS}"
    if len(text["description"]) > MAX_TEXT_CHARS:
        return f"description is {len(text['description'])} characters; at most {MAX_TEXT_CHARS}"
    files = _image_files(fields.get("image_files", ""))
    if isinstance(files, str):
        return files
    price = _price(fields.get("price"))
    if isinstance(price, str):
        return price

    extra: dict[str, Any] = {}
    nested = fields.get("attributes")
    if nested is not None and nested != "":
        if not isinstance(nested, Mapping):
            return "attributes must be an object of name -> value"
        extra.update(nested)
    extra.update({k: v for k, v in fields.items() if k not in CORE_FIELDS and k != "attributes"})
    attributes: dict[str, str] = {}
    for name, raw in extra.items():
        value = _scalar(raw)
        if value is None:
            return f"attribute {name!r} must be text or a number, not {type(raw).__name__}"
        if _has_control_chars(value):
            return f"attribute {name!r} contains control characters"
        if value:
            attributes[str(name)] = value
    year = attributes.get("year")
    if year is not None and not year.isdigit():
        return f"year {year!r} is not a whole number"
    return CatalogProduct(
        product_id=pid,
        title=text["title"],
        category=text["category"],
        description=text["description"],
        attributes=attributes,
        image_files=files,
        row=line,
        price=price,
    )


def read_catalog(root: Path) -> Catalog:
    """Parse the catalog: bad rows become ``Reject``s, good rows ``CatalogProduct``s.

    Image files are not opened here.
    """
    path = products_file(root)
    catalog = Catalog(root=root)
    seen: dict[str, int] = {}
    try:
        rows = list(_rows(path))
    except (SourceFileError, OSError) as exc:
        raise CatalogError(str(exc)) from exc
    for row in rows:
        source = f"{path}:{row.line}"
        if row.problem is not None:
            catalog.rejects.append(Reject(source, row.product_id, row.problem))
            continue
        result = validate_row(row.fields, row.line)
        if isinstance(result, str):
            pid = _scalar(row.fields.get("product_id")) or ""
            catalog.rejects.append(Reject(source, pid[:MAX_ID_CHARS], result))
            continue
        if result.product_id in seen:
            catalog.rejects.append(
                Reject(
                    source,
                    result.product_id,
                    f"duplicate product_id (first seen on line {seen[result.product_id]})",
                )
            )
            continue
        seen[result.product_id] = row.line
        catalog.products.append(result)
    return catalog
