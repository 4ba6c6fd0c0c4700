"""Augmentations that make studio catalog images look like shoppers' phone snapshots.

Shelf and street photos differ from catalog shots by framing (the product is off-centre,
partly cropped, tilted), background (shelves, hands, colour casts), light and sharpness, and
JPEG artefacts. Each step below imitates one of those; all randomness comes from the ``rng``
passed in, so a seed fixes the whole sequence.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def pad_on_background(img: Image.Image, rng: random.Random, max_frac: float = 0.3) -> Image.Image:
    """The product smaller in the frame, on a random solid colour (shelf, table, wall)."""
    w, h = img.size
    left, right = (int(w * rng.uniform(0, max_frac)) for _ in range(2))
    top, bottom = (int(h * rng.uniform(0, max_frac)) for _ in range(2))
    return ImageOps.expand(img, (left, top, right, bottom), fill=_colour(rng))


def random_resized_crop(
    img: Image.Image, size: int, rng: random.Random, scale: tuple[float, float] = (0.4, 1.0)
) -> Image.Image:
    """A random part of the image (aspect 3:4 to 4:3), resized to ``size``²."""
    w, h = img.size
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(*scale)
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw = round((target * ratio) ** 0.5)
        ch = round((target / ratio) ** 0.5)
        if 0 < cw <= w and 0 < ch <= h:
            x = rng.randint(0, w - cw)
            y = rng.randint(0, h - ch)
            return img.resize((size, size), Image.Resampling.BICUBIC, box=(x, y, x + cw, y + ch))
    side = min(w, h)  # fallback: centre square
    box = ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
    return img.resize((size, size), Image.Resampling.BICUBIC, box=box)


def jpeg_reencode(img: Image.Image, rng: random.Random) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(25, 85))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def snapshot(img: Image.Image, size: int, rng: random.Random) -> Image.Image:
    """One augmented view of ``img``, ``size`` pixels square (RGB)."""
    if rng.random() < 0.5:
        img = pad_on_background(img, rng)
    if rng.random() < 0.4:
        img = img.rotate(rng.uniform(-20, 20), Image.Resampling.BILINEAR, fillcolor=_colour(rng))
    img = random_resized_crop(img, size, rng)
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    if rng.random() < 0.8:
        # Light and contrast vary a lot in shops; saturation only a little, since colour is
        # what shoppers type ("navy shirt") and must survive augmentation.
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.65, 1.35))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.8, 1.2))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    if rng.random() < 0.4:
        img = jpeg_reencode(img, rng)
    return img


def to_array(
    images: list[Image.Image],
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> np.ndarray:
    """(N, 3, S, S) float32, normalised like inference does."""
    raw = np.stack([np.asarray(i, dtype=np.float32) for i in images]) / np.float32(255.0)
    norm = (raw - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    out: np.ndarray = np.ascontiguousarray(norm.transpose(0, 3, 1, 2), dtype=np.float32)
    return out
