"""Measured encoder speed (used by ``model info`` and ``snapshop bench``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from PIL import Image


class ImageTextEncoder(Protocol):
    """What the timings call: the ONNX ``Encoder``, or the benchmark's torch one."""

    def encode_images_with_instance(
        self, images: Sequence[Image.Image]
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def image_latency(encoder: ImageTextEncoder, batch: int, repeats: int = 5) -> float:
    """Median milliseconds per image for ``batch`` images, preprocessing included.

    Synthetic noise images at the catalog's typical size (170 px) so that resizing costs what
    it costs in ingest; one warm-up call first, since the first run allocates.
    """
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (170, 128, 3), dtype=np.uint8)) for _ in range(batch)
    ]
    # Both outputs, as ingest asks for them (the instance vector's pooling included).
    return median_ms(lambda: encoder.encode_images_with_instance(images), repeats) / batch


def median_ms(run: Callable[[], object], repeats: int) -> float:
    """Median milliseconds of ``run`` after one warm-up call (the first run allocates)."""
    run()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        runs.append((time.perf_counter() - t0) * 1000)
    return float(np.median(runs))


# Shopper-length queries (2-6 words), cycled to fill a batch.
QUERY_TEXTS = (
    "navy linen shirt",
    "women black running shoes",
    "red dress",
    "organic oat milk",
    "men blue denim jacket with pockets",
    "green apples",
)


def text_latency(encoder: ImageTextEncoder, batch: int, repeats: int = 5) -> float:
    """Median milliseconds per text for ``batch`` typical queries, tokenizing included."""
    texts = [QUERY_TEXTS[i % len(QUERY_TEXTS)] for i in range(batch)]
    return median_ms(lambda: encoder.encode_texts(texts), repeats) / batch
