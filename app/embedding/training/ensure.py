"""The default model prepares itself: trained once per (catalog, extra photos, recipe), cached.

``ensure_model`` returns ``<models-dir>/trained-<key>``, training it first when missing, and
points ``<models-dir>/default`` at it so that ingest, search and serve pick it up.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from app.embedding.bundle import BundleError, load_manifest
from app.embedding.training.recipe import Recipe

if TYPE_CHECKING:  # the loop imports torch: only pay for it when training is needed
    from app.embedding.training.loop import ProgressFn, TrainReport

DEFAULT_LINK = "default"


def _hash_files(h: hashlib._Hash, paths: Iterable[Path]) -> None:
    for path in paths:
        h.update(path.name.encode())
        h.update(b"\0")
        if path.is_file():
            h.update(hashlib.sha256(path.read_bytes()).digest())


def _listed_images(csv_path: Path, column: str, base: Path) -> list[Path]:
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        names = [
            name.strip()
            for row in csv.DictReader(fh)
            for name in (row.get(column) or "").split(";")
            if name.strip()
        ]
    return [base / name for name in sorted(set(names))]


def training_key(catalog_dir: Path, extra_pairs: Path | None, recipe: Recipe) -> str:
    """Hash of the catalog's rows and image bytes, the extra photos, and the recipe."""
    h = hashlib.sha256()
    h.update(recipe.key().encode())
    products = catalog_dir / "products.csv"
    h.update(products.read_bytes())
    _hash_files(h, _listed_images(products, "image_files", catalog_dir / "images"))
    if extra_pairs is not None:
        h.update(b"extra")
        h.update(extra_pairs.read_bytes())
        _hash_files(h, _listed_images(extra_pairs, "query_image", extra_pairs.parent))
    return h.hexdigest()


def ensure_model(
    models_dir: Path,
    catalog_dir: Path,
    extra_pairs: Path | None = None,
    recipe: Recipe | None = None,
    progress: ProgressFn | None = None,
) -> tuple[Path, TrainReport | None]:
    """(bundle path, the training report when it had to train, else None)."""
    recipe = recipe or Recipe()
    key = training_key(catalog_dir, extra_pairs, recipe)
    bundle = models_dir / f"trained-{key[:16]}"
    report = None
    try:
        load_manifest(bundle, verify=False)
    except BundleError:
        from app.embedding.training.loop import train

        report = train(recipe, catalog_dir, bundle, extra_pairs, progress, overwrite=True)
    _point_default(models_dir, bundle)
    return bundle, report


def _point_default(models_dir: Path, bundle: Path) -> None:
    link = models_dir / DEFAULT_LINK
    if link.is_symlink() or not link.exists():
        tmp = models_dir / f".{DEFAULT_LINK}.tmp"
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(bundle.name)
        os.replace(tmp, link)  # atomic: readers see the old or the new target, never none
    # A real directory at "default" is a bundle someone put there by hand: leave it alone.
