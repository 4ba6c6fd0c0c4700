"""Image decoding and CLIP preprocessing in PIL + numpy (no torch at inference).

``preprocess_images`` reproduces open_clip's eval transform for ``resize_mode="shortest"``:
Resize(shortest side, bicubic) -> CenterCrop -> ToTensor -> Normalize. torchvision
resizes PIL images with PIL itself, so using the same PIL call gives the same pixels.
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    from app.embedding.bundle import Manifest

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
}
# Beyond this aspect ratio the resize works on the cropped region only (see below);
# at 256 the full intermediate stays under ~40 MB at 224 px, and no real photo is affected.
_MAX_ELONGATION = 256


# Largest image we decode: above any phone camera (48-50 MP), far below what would exhaust
# memory. Checked from the header, before decoding, so a small file claiming huge dimensions
# (a decompression bomb) costs nothing.
MAX_PIXELS = 64_000_000


class ImageError(ValueError):
    """The data could not be decoded as an image; the message says why."""


class ImageTooLargeError(ImageError):
    """The image declares more pixels than the caller's limit (found before decoding)."""


def draft_size(image_size: int | None, keep: float = 1.0) -> tuple[int, int] | None:
    """The least size a JPEG must be decoded at for a model of ``image_size`` px input: twice
    it (so the bicubic resize still does the last step), more when a crop keeps only ``keep``
    of the photo. Ingest and queries decode alike, so a catalog shot sent back as a query gives
    the very pixels it was embedded from."""
    if image_size is None:
        return None
    side = math.ceil(2 * image_size / max(keep, 1e-3))
    return side, side


def load_image(
    source: Path | str | os.PathLike[str] | bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    draft: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode an image file or bytes, apply its EXIF orientation and return it as RGB.

    Phone photos are often stored sideways with an EXIF rotation flag; without
    ``exif_transpose`` a query photo would be embedded rotated.

    ``draft``: a JPEG is decoded at the smallest 1/2, 1/4 or 1/8 scale that is still at least
    this large (libjpeg scales in the DCT): a 48 MP photo needed at 224 px costs a fraction
    of a full decode. Other formats are decoded whole.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("image data is empty")
        label = f"image data ({len(source)} bytes)"
        stream: io.BytesIO | Path = io.BytesIO(bytes(source))
    else:
        stream = Path(source)
        label = str(stream)
        if not stream.is_file():
            raise ImageError(f"image file not found: {stream}")
        if stream.stat().st_size == 0:
            raise ImageError(f"image file is empty: {stream}")
    try:
        with Image.open(stream) as img:
            if img.width * img.height > max_pixels:
                raise ImageTooLargeError(
                    f"{label} is {img.width}x{img.height} pixels, more than the "
                    f"{max_pixels / 1_000_000:g} MP this service decodes; send a smaller photo"
                )
            if draft is not None and img.format == "JPEG":
                img.draft(None, draft)
            # load() forces the full decode here, so truncated files fail now
            # rather than later inside the resize.
            img.load()
            oriented = ImageOps.exif_transpose(img)
            rgb = oriented.convert("RGB")
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(f"{label} is not a recognised image format") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{label} is too large to decode safely: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL reports truncated/corrupt data through several exception types.
        raise ImageError(f"{label} could not be decoded: {exc}") from exc
    if rgb.width == 0 or rgb.height == 0:
        raise ImageError(f"{label} has no pixels ({rgb.width}x{rgb.height})")
    return rgb


def resize_and_crop(image: Image.Image, size: int, interpolation: str = "bicubic") -> Image.Image:
    """Resize the shortest side to ``size`` and center-crop to ``size`` x ``size``.

    Output sizes and crop offsets follow torchvision (``int()`` on the long side,
    ``round()`` for the crop offset), so for ordinary images the pixels are exactly
    those of open_clip's transform.
    """
    if interpolation not in _RESAMPLE:
        raise ValueError(f"unsupported interpolation {interpolation!r}")
    if image.mode != "RGB":
        # Converting first means palette/greyscale images get real bicubic filtering
        # (PIL falls back to nearest for palette images).
        image = image.convert("RGB")
    w, h = image.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    # round() on a float returns an int, with banker's rounding like torchvision.
    left = round((new_w - size) / 2.0)
    top = round((new_h - size) / 2.0)
    if max(new_w, new_h) > _MAX_ELONGATION * size:
        # A degenerate strip (say 100000x10) would need a gigabyte-sized intermediate
        # that is almost entirely cropped away. Resample only the source box that maps
        # onto the crop: same geometry, but PIL's two-pass rounding differs (mean error
        # well under one grey level, a few pixels off by more), and memory stays bounded.
        sx, sy = w / new_w, h / new_h
        box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
        return image.resize((size, size), _RESAMPLE[interpolation], box=box)
    resized = image.resize((new_w, new_h), _RESAMPLE[interpolation])
    return resized.crop((left, top, left + size, top + size))


def preprocess_images(images: Sequence[Image.Image], manifest: Manifest) -> np.ndarray:
    """Turn PIL images into the model's input: float32 array (N, 3, S, S)."""
    if manifest.resize != "shortest":
        raise ValueError(f"unsupported resize mode {manifest.resize!r} (only 'shortest')")
    size = manifest.image_size
    table = normalised_levels(tuple(manifest.mean), tuple(manifest.std))
    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    for i, image in enumerate(images):
        crop = resize_and_crop(image, size, manifest.interpolation)
        pixels = np.asarray(crop, dtype=np.uint8)
        for channel in range(3):
            np.take(table[channel], pixels[:, :, channel], out=out[i, channel])
    return out


@functools.lru_cache(maxsize=8)
def normalised_levels(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: each channel's 256 byte values as ToTensor + Normalize make them, with
    the same float32 operations in the same order, so looking pixels up gives the very numbers
    computing them does, in a third of the time (0.44 -> 0.13 ms for a 160 px image)."""
    levels = np.arange(256, dtype=np.float32)[None, :]
    mean_col = np.asarray(mean, dtype=np.float32).reshape(3, 1)
    std_col = np.asarray(std, dtype=np.float32).reshape(3, 1)
    table: np.ndarray = (levels / np.float32(255.0) - mean_col) / std_col
    table.setflags(write=False)  # shared by every call: cached
    return table
