"""A deterministic stand-in for the ONNX encoder, for tests that do not measure model quality.

It satisfies ``app.search.service.QueryEncoder`` and ``ingestion.pipeline.IngestEncoder``
without a model bundle (no torch, no open_clip export, no ONNX session):

- an image is its 8x8 RGB thumbnail, mean-centred and L2-normalised: the same photo gives the
  same vector (cosine 1), a crop or resize of it stays close, different photos are apart;
- a text is a bag of its lower-cased words, each hashed to one dimension with a sign: texts
  that share words are close, texts that share none are near-orthogonal.

Both live in one ``DIM``-dimensional space, as the real towers do, so every leg can run.
``InstanceFakeEncoder`` adds an instance vector (the photo's 4x4 grey thumbnail, mean-centred):
the same photo gives cosine 1, so the ``image_instance`` leg finds it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
from PIL import Image

THUMB = 8
DIM = THUMB * THUMB * 3  # 192
_WORD = re.compile(r"\w+")


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows L2-normalised; an all-zero row becomes the first axis (never a zero vector)."""
    out = np.asarray(x, dtype=np.float32).copy()
    norms = np.linalg.norm(out, axis=1)
    out[norms == 0, 0] = 1.0
    norms[norms == 0] = 1.0
    result: np.ndarray = (out / norms[:, None]).astype(np.float32)
    return result


def _bucket(token: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, 1.0 if (value >> 63) & 1 else -1.0


class FakeEncoder:
    """Images by thumbnail, texts by hashed words; ``DIM`` dimensions, L2-normalised rows."""

    model_id = "fake-thumbnail-hash-v1"
    provider = "CPUExecutionProvider"  # it runs on the CPU, as the real one does in tests
    device = "cpu"
    threads = 1
    parallel_towers = False  # ingest runs one tower after the other
    thumb = THUMB
    dim = DIM
    instance_dim = 0  # no identity embedding, as in bundles without an instance head

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, DIM) thumbnails in 0..1; ``encode_pixels`` turns them into vectors."""
        rows = [
            np.asarray(
                image.convert("RGB").resize((self.thumb, self.thumb), Image.Resampling.BOX),
                dtype=np.float32,
            ).reshape(-1)
            / 255.0
            for image in images
        ]
        return np.stack(rows) if rows else np.empty((0, self.dim), dtype=np.float32)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        centred = pixels - pixels.mean(axis=1, keepdims=True)
        return _unit_rows(centred)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_pixels(self.preprocess(images))

    def instance_of(self, pixels: np.ndarray) -> np.ndarray:
        return np.empty((len(pixels), 0), dtype=np.float32)

    def encode_pixels_with_instance(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_pixels(pixels), self.instance_of(pixels)

    def encode_images_with_instance(
        self, images: Sequence[Image.Image]
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_pixels_with_instance(self.preprocess(images))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode_texts expects a sequence of strings, not one string")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _WORD.findall(text.lower()):
                col, sign = _bucket(token, self.dim)
                out[row, col] += sign
        return _unit_rows(out)


INSTANCE_THUMB = 4
INSTANCE_DIM = INSTANCE_THUMB * INSTANCE_THUMB


class InstanceFakeEncoder(FakeEncoder):
    """``FakeEncoder`` plus an instance vector: the photo's grey 4x4 thumbnail, mean-centred."""

    model_id = "fake-thumbnail-hash-instance-v1"
    instance_dim = INSTANCE_DIM

    def instance_of(self, pixels: np.ndarray) -> np.ndarray:
        rgb = pixels.reshape(len(pixels), THUMB, THUMB, 3).mean(axis=3)
        step = THUMB // INSTANCE_THUMB
        grey = rgb.reshape(len(pixels), INSTANCE_THUMB, step, INSTANCE_THUMB, step).mean(
            axis=(2, 4)
        )
        flat = grey.reshape(len(pixels), -1)
        return _unit_rows(flat - flat.mean(axis=1, keepdims=True))


class NarrowFakeEncoder(FakeEncoder):
    """``FakeEncoder`` of another model: 6x6 thumbnails, 108 dimensions. Its vectors cannot be
    searched in a ``FakeEncoder`` collection (nor the other way round): the engine refuses the
    size, so a query embedded by one model and sent to the other's collection fails loudly."""

    model_id = "fake-thumbnail-hash-6px-v1"
    thumb = 6
    dim = 6 * 6 * 3
