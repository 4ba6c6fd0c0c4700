"""Query embedding: decode (and crop) the photo, embed photo and text, micro-batched if asked."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps

from app.embedding.preprocess import MAX_PIXELS, ImageTooLargeError, draft_size, load_image
from app.search.batching import MicroBatcher
from app.search.errors import PayloadTooLargeError, QueryError
from app.search.schemas import Crop
from app.search.timing import SearchObserver, elapsed_ms


class QueryEncoder(Protocol):
    """What the service needs from the ONNX encoder."""

    @property
    def model_id(self) -> str: ...

    @property
    def instance_dim(self) -> int: ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def encode_images_with_instance(
        self, images: Sequence[Image.Image]
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


# The photo is embedded as two views, and its vectors are the mean of theirs: the photo as
# taken, and its centre crop with the contrast stretched per channel. A shopper centres the
# product, so the crop drops surroundings (a table, a shelf, a hand) the catalog shot never has;
# the stretch undoes much of a phone's exposure and colour cast, which the catalog's studio shots
# (white ground, full range) hardly change under. Measured on the dev sets (whitened instance
# vector): snapshots R@1 0.875 with the photo and two plain crops -> 0.900, held-out shelf
# photos R@10 0.938 either way; one model run at batch 2 instead of 3.
QUERY_CROP = 0.8
# Per cent of the darkest and brightest pixels clipped before stretching: a few specular
# highlights or black pixels then don't pin the range.
AUTOCONTRAST_CUTOFF = 1.0


def centre_crop(image: Image.Image, frac: float) -> Image.Image:
    w, h = image.size
    cw, ch = max(1, round(w * frac)), max(1, round(h * frac))
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def query_views(image: Image.Image) -> list[Image.Image]:
    """The photo, and its centre crop with the contrast stretched."""
    crop = centre_crop(image, QUERY_CROP)
    if crop.mode not in ("L", "RGB"):
        crop = crop.convert("RGB")
    return [image, ImageOps.autocontrast(crop, cutoff=AUTOCONTRAST_CUTOFF)]


def _mean_unit(rows: np.ndarray) -> np.ndarray:
    mean: np.ndarray = rows.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


def crop(image: Image.Image, box: Crop) -> Image.Image:
    """``image`` cut to ``box`` (normalised coordinates); never narrower than one pixel."""
    w, h = image.size
    left, top = round(box.x0 * w), round(box.y0 * h)
    right, bottom = max(round(box.x1 * w), left + 1), max(round(box.y1 * h), top + 1)
    return image.crop((left, top, right, bottom))


@dataclass(frozen=True)
class PhotoVectors:
    """A query photo's vectors: the views' means (what the legs search with) and the whole
    photo's own (what the exact-match rule compares: the very catalog shot scores 1 there)."""

    image: np.ndarray
    instance: np.ndarray | None
    whole_image: np.ndarray
    whole_instance: np.ndarray | None


class QueryEmbedder:
    """One query's photo and text to vectors; concurrent queries share micro-batches if asked."""

    def __init__(
        self,
        encoder: QueryEncoder,
        micro_batch: bool = False,
        *,
        max_decodes: int = 4,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.encoder = encoder
        # A decoded photo is width x height x 3 bytes: bounding how many decode at once bounds
        # the memory a burst of large uploads can take.
        self._decodes = threading.BoundedSemaphore(max_decodes)
        self.max_pixels = max_pixels
        manifest = getattr(encoder, "manifest", None)
        self.image_size: int | None = getattr(manifest, "image_size", None)
        self.observer: SearchObserver | None = None
        self._text_batcher: MicroBatcher[str] | None = None
        self._image_batcher: MicroBatcher[list[Image.Image]] | None = None
        if micro_batch:
            self._text_batcher = MicroBatcher(self._texts, name="text-batcher")
            self._image_batcher = MicroBatcher(self._joined, name="image-batcher")

    def _observed(self, tower: str, size: int, started: float) -> None:
        """Every model run passes here, batched or not: its size and time for the observer."""
        if self.observer is not None:
            self.observer.encoder_batch(tower, size, time.perf_counter() - started)

    def _texts(self, texts: Sequence[str]) -> np.ndarray:
        t = time.perf_counter()
        out = self.encoder.encode_texts(texts)
        self._observed("text", len(texts), t)
        return out

    def _joined(self, photos: Sequence[list[Image.Image]]) -> np.ndarray:
        """One row per photo: the views' mean embedding and instance embedding, then the whole
        photo's two, side by side: what the micro-batcher hands out (one model run serves all;
        ``photo`` splits them again)."""
        flat = [view for views in photos for view in views]
        t = time.perf_counter()
        emb, inst = self.encoder.encode_images_with_instance(flat)
        self._observed("image", len(flat), t)
        rows, start = [], 0
        for views in photos:
            end = start + len(views)
            mean = [_mean_unit(emb[start:end]), _mean_unit(inst[start:end])]
            rows.append(np.hstack([*mean, emb[start], inst[start]]))
            start = end
        return np.stack(rows)

    def close(self) -> None:
        for batcher in (self._text_batcher, self._image_batcher):
            if batcher is not None:
                batcher.close()

    def text(self, text: str, timings: dict[str, float]) -> np.ndarray:
        t = time.perf_counter()
        if self._text_batcher is not None:
            vec: np.ndarray = self._text_batcher(text)
        else:
            vec = self._texts([text])[0]
        timings["embed_text"] = elapsed_ms(t)
        return vec

    def _draft(self, box: Crop | None) -> tuple[int, int] | None:
        keep = 1.0 if box is None else min(box.x1 - box.x0, box.y1 - box.y0)
        return draft_size(self.image_size, keep)

    def photo(self, data: bytes, box: Crop | None, timings: dict[str, float]) -> PhotoVectors:
        """The photo's embeddings (instance ones None when the model has none)."""
        return self.embed_photo(self.decode(data, box, timings), timings)

    def decode(self, data: bytes, box: Crop | None, timings: dict[str, float]) -> Image.Image:
        """The uploaded photo as an image, cut to ``box``; ``QueryError`` if unreadable."""
        t = time.perf_counter()
        try:
            with self._decodes:
                image = load_image(data, max_pixels=self.max_pixels, draft=self._draft(box))
        except ImageTooLargeError as exc:
            raise PayloadTooLargeError(f"the image is too large: {exc}") from exc
        except Exception as exc:
            raise QueryError(f"the image could not be decoded: {exc}") from exc
        if box is not None:
            image = crop(image, box)
        timings["decode"] = elapsed_ms(t)
        return image

    def embed_photo(self, image: Image.Image, timings: dict[str, float]) -> PhotoVectors:
        """A decoded photo's embeddings (instance ones None when the model has none)."""
        t = time.perf_counter()
        views = query_views(image)
        if self._image_batcher is not None:
            row: np.ndarray = self._image_batcher(views)
        else:
            row = self._joined([views])[0]
        timings["embed_image"] = elapsed_ms(t)
        inst = self.encoder.instance_dim
        dim = len(row) // 2 - inst
        parts = np.split(row, [dim, dim + inst, 2 * dim + inst])
        return PhotoVectors(
            image=parts[0],
            instance=parts[1] if inst else None,
            whole_image=parts[2],
            whole_instance=parts[3] if inst else None,
        )
