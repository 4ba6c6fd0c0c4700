"""Augmentations that make studio catalog images look like shoppers' phone snapshots.

Shelf and street photos differ from catalog shots by framing (the product is off-centre,
partly cropped, tilted), background (shelves, hands, colour casts), light and sharpness, and
JPEG artefacts. Each step below imitates one of those; all randomness comes from the ``rng``
passed in, so a seed fixes the whole sequence.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps


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
    """Phone and messenger compression: a JPEG round trip at quality 25-85."""
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


# -- phone snapshots: the steps that make a catalog shot look like a shopper's photo ----------
# ``phone_snapshot`` chains them; each is also usable alone. All of them take and return RGB
# images and draw every random number from ``rng`` (no numpy global state), so a seed fixes them.


def _perspective_coeffs(
    src: list[tuple[float, float]], dst: list[tuple[float, float]]
) -> list[float]:
    # PIL's PERSPECTIVE maps output pixels to input ones, so solve for dst -> src.
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    a = np.asarray(rows, dtype=np.float64)
    b = np.asarray([c for p in src for c in p], dtype=np.float64)
    return [float(c) for c in np.linalg.solve(a, b)]


def perspective_warp(img: Image.Image, rng: random.Random, strength: float = 0.12) -> Image.Image:
    """The phone held at an angle: each corner moved by up to ``strength`` of the side."""
    w, h = img.size
    corners = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    moved = [
        (x + rng.uniform(-strength, strength) * w, y + rng.uniform(-strength, strength) * h)
        for x, y in corners
    ]
    coeffs = _perspective_coeffs(corners, moved)
    return img.transform(
        img.size,
        Image.Transform.PERSPECTIVE,
        coeffs,
        Image.Resampling.BILINEAR,
        fillcolor=_colour(rng),
    )


def rotate(img: Image.Image, rng: random.Random, max_degrees: float = 25.0) -> Image.Image:
    """The phone not held level: a rotation of up to ``max_degrees``, corners filled."""
    angle = rng.uniform(-max_degrees, max_degrees)
    return img.rotate(angle, Image.Resampling.BILINEAR, expand=True, fillcolor=_colour(rng))


def _texture(size: tuple[int, int], rng: random.Random) -> Image.Image:
    # Fabric, wood, tiles or a cluttered shelf: low-frequency noise, stripes or a checker,
    # in two random colours. Numpy with a seed drawn from ``rng`` keeps it deterministic.
    w, h = size
    gen = np.random.default_rng(rng.randrange(2**32))
    kind = rng.randrange(3)
    if kind == 0:
        coarse = gen.random((max(2, h // 16), max(2, w // 16)), dtype=np.float32)
        mask = (
            np.asarray(
                Image.fromarray((coarse * 255).astype(np.uint8)).resize(
                    (w, h), Image.Resampling.BICUBIC
                ),
                dtype=np.float32,
            )
            / 255.0
        )
    elif kind == 1:
        period = rng.uniform(6, 40)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        mask = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    else:
        cell = rng.randint(8, 48)
        yy, xx = np.mgrid[0:h, 0:w]
        mask = (((xx // cell) + (yy // cell)) % 2).astype(np.float32)
    mask += gen.normal(0, 0.08, (h, w)).astype(np.float32)  # grain
    a, b = np.asarray(_colour(rng), np.float32), np.asarray(_colour(rng), np.float32)
    pixels = a + (b - a) * np.clip(mask, 0, 1)[..., None]
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def textured_background(
    img: Image.Image, rng: random.Random, scale: tuple[float, float] = (0.55, 0.9)
) -> Image.Image:
    """The product on a patterned surface (noise, stripes, checker), filling ``scale`` of it."""
    w, h = img.size
    side = max(w, h)
    canvas = _texture((side, side), rng)
    k = rng.uniform(*scale) * side / max(w, h)
    small = img.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.BICUBIC)
    x = rng.randint(0, side - small.width)
    y = rng.randint(0, side - small.height)
    canvas.paste(small, (x, y))
    return canvas


def hand_occlusion(img: Image.Image, rng: random.Random, max_frac: float = 0.3) -> Image.Image:
    """A hand or thumb: a skin-toned blob entering from one edge, up to ``max_frac`` of a side."""
    w, h = img.size
    out = img.copy()
    skin = (rng.randint(120, 240), rng.randint(80, 190), rng.randint(60, 160))
    rx, ry = rng.uniform(0.1, max_frac) * w, rng.uniform(0.15, max_frac + 0.1) * h
    edge = rng.randrange(4)
    cx = (0, w, rng.uniform(0, w), rng.uniform(0, w))[edge]
    cy = (rng.uniform(0, h), rng.uniform(0, h), 0, h)[edge]
    ImageDraw.Draw(out).ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=skin)
    return out


def shelf_edge(img: Image.Image, rng: random.Random, max_frac: float = 0.2) -> Image.Image:
    """A shelf lip or price rail: a flat band across the top or bottom, up to ``max_frac`` high."""
    w, h = img.size
    out = img.copy()
    band = max(1, round(h * rng.uniform(0.05, max_frac)))
    y0 = 0 if rng.random() < 0.5 else h - band
    tone = rng.randint(30, 230)
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, y0, w, y0 + band), fill=(tone, tone, tone))
    if rng.random() < 0.5:  # a price label on the rail
        lw = round(w * rng.uniform(0.15, 0.35))
        lx = rng.randint(0, max(0, w - lw))
        draw.rectangle((lx, y0 + band // 4, lx + lw, y0 + band - band // 4), fill=_colour(rng))
    return out


def lighting_cast(img: Image.Image, rng: random.Random, strength: float = 0.15) -> Image.Image:
    """Shop light: per-channel gains (white balance) and a brightness falloff across the frame."""
    pixels = np.asarray(img, dtype=np.float32)
    h, w = pixels.shape[:2]
    gains = np.asarray([rng.uniform(1 - strength, 1 + strength) for _ in range(3)], np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (xx / max(w, 1) - 0.5) * np.cos(angle) + (yy / max(h, 1) - 0.5) * np.sin(angle)
    light = 1 + ramp * rng.uniform(0, 2 * strength)
    out = pixels * gains * light[..., None]
    return Image.fromarray(out.clip(0, 255).astype(np.uint8), "RGB")


def motion_blur(img: Image.Image, rng: random.Random, max_length: int = 9) -> Image.Image:
    """A shaking hand: the image averaged along a random direction over up to ``max_length`` px."""
    length = rng.randint(2, max_length)
    angle = rng.uniform(0, np.pi)
    dx, dy = np.cos(angle), np.sin(angle)
    pixels = np.asarray(img, dtype=np.float32)
    acc = np.zeros_like(pixels)
    for i in range(length):
        t = i - (length - 1) / 2
        acc += np.roll(pixels, (round(t * dy), round(t * dx)), axis=(0, 1))
    return Image.fromarray((acc / length).clip(0, 255).astype(np.uint8), "RGB")


def down_up_scale(
    img: Image.Image, rng: random.Random, factor: tuple[float, float] = (0.25, 0.7)
) -> Image.Image:
    """A zoomed-in or forwarded photo: shrunk by ``factor`` then enlarged back, losing detail."""
    w, h = img.size
    k = rng.uniform(*factor)
    small = img.resize(
        (max(8, round(w * k)), max(8, round(h * k))),
        rng.choice([Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BOX]),
    )
    return small.resize((w, h), Image.Resampling.BILINEAR)


def screenshot_border(img: Image.Image, rng: random.Random, max_frac: float = 0.15) -> Image.Image:
    """A screenshot of a shop app: status bar on top, toolbar below, in one flat UI colour."""
    w, h = img.size
    top, bottom = (max(1, round(h * rng.uniform(0.03, max_frac))) for _ in range(2))
    ui = (255, 255, 255) if rng.random() < 0.6 else (rng.randint(0, 60),) * 3
    out = ImageOps.expand(img, (0, top, 0, bottom), fill=ui)
    draw = ImageDraw.Draw(out)
    ink = (128, 128, 128)
    for _ in range(rng.randint(1, 4)):  # icons and text in the bars
        x = rng.randint(0, max(0, w - 10))
        bw = rng.randint(4, max(5, w // 5))
        draw.rectangle((x, top // 3, x + bw, top - top // 3), fill=ink)
        draw.rectangle((x, h + top + bottom // 3, x + bw, h + top + bottom - bottom // 3), fill=ink)
    return out


Step = Callable[[Image.Image, random.Random], Image.Image]

# (probability, step) in the order a real photo gets them: the scene (hand, shelf), the camera
# (angle, tilt), the light, then the sensor and the sharing (shake, rescaling, screenshot).
PHONE_STEPS: tuple[tuple[float, Step], ...] = (
    (0.25, hand_occlusion),
    (0.2, shelf_edge),
    (0.5, perspective_warp),
    (0.4, rotate),
    (0.6, lighting_cast),
    (0.25, motion_blur),
    (0.3, down_up_scale),
    (0.15, screenshot_border),
)


def phone_snapshot(img: Image.Image, rng: random.Random, size: int | None = None) -> Image.Image:
    """One phone-snapshot view of a catalog image (RGB; ``size`` square if given).

    A background first (textured, else sometimes a plain colour), then each of ``PHONE_STEPS``
    with its probability, an optional crop to ``size``, and sometimes a JPEG round trip.
    """
    img = img.convert("RGB")
    if rng.random() < 0.6:
        img = textured_background(img, rng)
    elif rng.random() < 0.5:
        img = pad_on_background(img, rng)
    for probability, step in PHONE_STEPS:
        if rng.random() < probability:
            img = step(img, rng)
    if size is not None:
        img = random_resized_crop(img, size, rng, scale=(0.6, 1.0))
    if rng.random() < 0.5:
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
