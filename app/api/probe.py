"""Whether the model can embed now: what ``/readyz`` asks of the encoder."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import numpy as np
from PIL import Image


class ProbedEncoder(Protocol):
    @property
    def model_id(self) -> str: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...

    def encode_images(self, images: list[Image.Image]) -> np.ndarray: ...


class ModelUnreadyError(RuntimeError):
    """The encoder cannot embed now (the message says how it failed)."""


class ModelProbe:
    """Whether both towers of the encoder embed: a tiny text and a tiny image through them.

    A success is remembered for ``ttl_s``: readiness is asked every few seconds and need not
    run the model each time; a failure is not, so a recovered model is ready at the next ask.
    """

    def __init__(self, encoder: ProbedEncoder, ttl_s: float = 30.0) -> None:
        self.encoder = encoder
        self.ttl_s = ttl_s
        self._ok_until = 0.0
        self._lock = threading.Lock()

    def check(self) -> None:
        with self._lock:
            if time.monotonic() < self._ok_until:
                return
            model = self.encoder.model_id
            try:
                runs = {
                    "text": self.encoder.encode_texts(["readiness probe"]),
                    "image": self.encoder.encode_images([Image.new("RGB", (8, 8), "gray")]),
                }
            except Exception as exc:
                raise ModelUnreadyError(
                    f"the model {model} cannot embed: {type(exc).__name__}: {exc}"
                ) from exc
            for tower, out in runs.items():
                rows = np.asarray(out)
                if rows.ndim != 2 or rows.shape[0] != 1 or not np.isfinite(rows).all():
                    raise ModelUnreadyError(
                        f"the model {model}'s {tower} tower gave an unusable vector "
                        f"(shape {rows.shape}, finite: {bool(np.isfinite(rows).all())})"
                    )
            self._ok_until = time.monotonic() + self.ttl_s
