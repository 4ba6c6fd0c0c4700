"""A regenerable dev query set of synthetic phone snapshots of catalog products.

Each query is one catalog image re-photographed in code: placed on a new surface, seen at an
angle and tilted, under a coloured light, slightly out of focus, with sensor noise, saved as a
phone JPEG. The set is written in the ``dev_queries`` format (``image_queries.csv`` +
``images/``), ``query_type`` ``synthetic_phone_snapshot``.

The distortions here are deliberately independent of the training augmentations
(``app.embedding.training.augment``): other functions, other generators, other parameter
ranges, and this module never imports that one. Otherwise the evaluation would grade how well
the model learned its own training distortions rather than how it copes with new photos.
"""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, UnidentifiedImageError

from ingestion.catalog import Catalog, CatalogProduct, products_file, read_catalog

QUERY_TYPE = "synthetic_phone_snapshot"
COLUMNS = ("query_id", "query_image", "query_type", "relevant_product_ids", "relevant_category")
# Grocery has real shelf photos in dev_queries; the snapshot set measures the catalog's fashion
# (studio-shot) products, which have none.
DEFAULT_EXCLUDE = ("Grocery",)
FRAME = (384, 512)  # portrait, like a phone photo scaled down for upload


class SnapshotError(ValueError):
    """The snapshot set cannot be made; the message names the file (and row) to fix."""


@dataclass(frozen=True)
class SnapshotParams:
    """The evaluation's distortion ranges (kept apart from the training ones on purpose)."""

    fill: tuple[float, float] = (0.7, 0.92)  # product's size / the largest that fits the frame
    corner_shift: float = 0.08  # perspective: corner moves, as a fraction of the side
    tilt_degrees: float = 15.0
    temperature: float = 0.18  # warm/cool white balance: red up and blue down, or the reverse
    tint: float = 0.08  # green/magenta
    exposure: tuple[float, float] = (0.75, 1.2)
    gamma: tuple[float, float] = (0.8, 1.25)
    blur_radius: tuple[float, float] = (0.3, 1.3)
    noise_sigma: tuple[float, float] = (1.0, 6.0)  # sensor noise, in 0-255 units
    jpeg_quality: tuple[int, int] = (45, 82)


# -- distortions ------------------------------------------------------------------------------


def _surface(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A table, floor or bedspread: a two-colour gradient with wood-like grain rings."""
    w, h = size
    gen = np.random.default_rng(rng.getrandbits(64))
    base = gen.integers(40, 230, size=3).astype(np.float32)
    other = np.clip(base + gen.normal(0, 45, size=3), 0, 255).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(-w, 2 * w), rng.uniform(-h, 2 * h)
    rings = np.sin(np.hypot(xx - cx, (yy - cy) * rng.uniform(0.2, 1.0)) / rng.uniform(3, 12))
    ramp = (yy / h) * rng.uniform(0.2, 0.8)
    mix = np.clip(0.5 * ramp + 0.25 * (rings + 1) * rng.uniform(0.1, 0.6), 0, 1)[..., None]
    pixels = base * (1 - mix) + other * mix
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def place_on_surface(img: Image.Image, rng: random.Random, p: SnapshotParams) -> Image.Image:
    """The product, ``p.fill`` of the largest size that fits, somewhere on a new surface."""
    frame = _surface(FRAME, rng)
    # Shoppers fill the screen with what they photograph; the surface shows around it.
    k = rng.uniform(*p.fill) * min(FRAME[0] / img.width, FRAME[1] / img.height)
    item = img.resize((round(img.width * k), round(img.height * k)), Image.Resampling.LANCZOS)
    # Off-centre, as shoppers frame things, but never cut off: the whole product stays in view.
    x = rng.randint(0, FRAME[0] - item.width)
    y = rng.randint(0, FRAME[1] - item.height)
    frame.paste(item, (x, y))
    return frame


def view_at_angle(img: Image.Image, rng: random.Random, p: SnapshotParams) -> Image.Image:
    """Perspective (the four corners of the view moved inwards/outwards) and a tilt."""
    w, h = img.size
    s = p.corner_shift

    def jitter(x: float, y: float) -> tuple[float, float]:
        return x + rng.uniform(-s, s) * w, y + rng.uniform(-s, s) * h

    # QUAD maps the output frame onto this quadrilateral of the input: upper-left, lower-left,
    # lower-right, upper-right.
    quad = (*jitter(0, 0), *jitter(0, h), *jitter(w, h), *jitter(w, 0))
    edge = img.getpixel((0, 0))
    warped = img.transform(
        img.size, Image.Transform.QUAD, quad, Image.Resampling.BICUBIC, fillcolor=edge
    )
    return warped.rotate(
        rng.uniform(-p.tilt_degrees, p.tilt_degrees), Image.Resampling.BICUBIC, fillcolor=edge
    )


def colour_light(img: Image.Image, rng: random.Random, p: SnapshotParams) -> Image.Image:
    """White balance (temperature, tint), exposure and a gamma curve, as a phone's auto mode."""
    t = rng.uniform(-p.temperature, p.temperature)
    g = rng.uniform(-p.tint, p.tint)
    e = rng.uniform(*p.exposure)
    gains = np.asarray([(1 + t) * e, (1 + g) * e, (1 - t) * e], dtype=np.float32)
    pixels = np.asarray(img, dtype=np.float32) / 255.0
    curved = np.power(np.clip(pixels * gains, 0, 1), rng.uniform(*p.gamma))
    return Image.fromarray((curved * 255).round().astype(np.uint8), "RGB")


def camera(img: Image.Image, rng: random.Random, p: SnapshotParams) -> Image.Image:
    """Focus (a Gaussian blur) and sensor noise."""
    blurred = img.filter(ImageFilter.GaussianBlur(rng.uniform(*p.blur_radius)))
    gen = np.random.default_rng(rng.getrandbits(64))
    noise = gen.normal(0, rng.uniform(*p.noise_sigma), (img.height, img.width, 1))
    pixels = np.asarray(blurred, dtype=np.float32) + noise.astype(np.float32)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def distort(img: Image.Image, rng: random.Random, p: SnapshotParams | None = None) -> Image.Image:
    """A catalog image as a phone snapshot (every step always applied; RGB, ``FRAME`` size)."""
    p = p or SnapshotParams()
    shot = place_on_surface(img.convert("RGB"), rng, p)
    shot = view_at_angle(shot, rng, p)
    shot = colour_light(shot, rng, p)
    return camera(shot, rng, p)


# -- the query set ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotSet:
    csv_path: Path
    count: int
    eligible: int  # products the sample was drawn from
    skipped_rows: int  # catalog rows rejected by the catalog reader


def sample_products(
    products: list[CatalogProduct], n: int, rng: random.Random
) -> list[CatalogProduct]:
    """``n`` products spread evenly over the catalog: one drawn at random from each of ``n``
    equal consecutive slices, so the sample follows the file's mix of categories."""
    if n >= len(products):
        return list(products)
    bounds = [round(i * len(products) / n) for i in range(n + 1)]
    return [products[rng.randrange(lo, hi)] for lo, hi in pairwise(bounds)]


def _query_id(index: int, product_id: str) -> str:
    # Also the image's file name, so only characters safe in any file system.
    return f"snap_{index:04d}_{re.sub(r'[^A-Za-z0-9_.-]+', '-', product_id)[:80]}"


def _open(catalog: Catalog, product: CatalogProduct, name: str) -> Image.Image:
    where = f"{products_file(catalog.root)}:{product.row} (product {product.product_id})"
    path = catalog.image_path(name)
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise SnapshotError(f"{where}: image {name} not found at {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise SnapshotError(f"{where}: image {name} cannot be read ({exc})") from exc


def write_snapshot_set(
    catalog_dir: Path,
    out_dir: Path,
    n: int = 200,
    seed: int = 0,
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SnapshotSet:
    """Write ``n`` snapshot queries of ``catalog_dir``'s products under ``out_dir``.

    ``exclude`` names top-level categories left out of the sample (they remain distractors in
    the index). Same catalog, ``n`` and ``seed`` give the same bytes.
    """
    if n < 1:
        raise SnapshotError(f"--n must be at least 1, not {n}")
    catalog = read_catalog(catalog_dir)
    skip = {e.casefold() for e in exclude}
    eligible = [p for p in catalog.products if p.category.split("/")[0].casefold() not in skip]
    if not eligible:
        raise SnapshotError(
            f"{products_file(catalog_dir)}: no usable products outside {', '.join(exclude)}"
        )
    csv_path = out_dir / "image_queries.csv"
    images_dir = out_dir / "images"
    if csv_path.exists() and not overwrite:
        raise SnapshotError(f"{csv_path} exists; pass --overwrite to replace the set")
    images_dir.mkdir(parents=True, exist_ok=True)
    for old in images_dir.glob("snap_*.jpg"):  # a smaller --n must not leave stale photos
        old.unlink()
    rng = random.Random(seed)
    picked = sample_products(eligible, n, rng)
    rows = []
    for i, product in enumerate(picked):
        # Each query gets its own generator, so one query's image does not depend on others'.
        qrng = random.Random(f"{seed}:{i}:{product.product_id}")
        name = qrng.choice(product.image_files)
        shot = distort(_open(catalog, product, name), qrng)
        qid = _query_id(i, product.product_id)
        p = SnapshotParams()
        shot.save(images_dir / f"{qid}.jpg", "JPEG", quality=qrng.randint(*p.jpeg_quality))
        rows.append([qid, f"images/{qid}.jpg", QUERY_TYPE, product.product_id, product.category])
        if progress is not None:
            progress(i + 1, len(picked))
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return SnapshotSet(csv_path, len(rows), len(eligible), len(catalog.rejects))
