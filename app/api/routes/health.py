"""Liveness (what the process is running with), readiness (whether the store and the model can
serve) and the Prometheus scrape."""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any, Protocol

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from app.api.deps import EncoderDep, SettingsDep, StoreDep
from app.api.problems import problem_response
from app.store import StoreError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(settings: SettingsDep, encoder: EncoderDep, store: StoreDep) -> dict[str, Any]:
    info = store.info()
    return {
        "status": "ok",
        "model": encoder.model_id,
        "device": settings.device,
        "provider": encoder.provider,
        "store": {
            "backend": info.backend,
            "points": info.points,
            "indexed_vectors": info.indexed_vectors,
            "model": info.model_id,
        },
    }


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


def get_model_probe(request: Request) -> ModelProbe:
    probe: ModelProbe = request.app.state.model_probe
    return probe


ProbeDep = Annotated[ModelProbe, Depends(get_model_probe)]


@router.get(
    "/readyz",
    responses={503: {"description": "The store or the model cannot serve searches now."}},
)
def readyz(store: StoreDep, probe: ProbeDep, encoder: EncoderDep) -> JSONResponse:
    """Whether searches can be answered now: the store's files readable and a collection
    there, and the model embedding a probe text and image.

    ``/healthz`` says the process is up (restart it if that fails); ``/readyz`` says whether to
    send it traffic. It is asked afresh each time (the model's success is reused for 30 s), so
    it turns ready again by itself once the store is back, with no restart.
    """
    try:
        store.probe()
        probe.check()
    except (StoreError, ModelUnreadyError) as exc:
        return problem_response(503, str(exc), headers={"Retry-After": "5"})
    return JSONResponse(
        content={"status": "ready", "points": store.info().points, "model": encoder.model_id}
    )


_EXPOSITION = {"schema": {"type": "string"}}


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus metrics: the text format, or OpenMetrics when the "
            "Accept header asks for it.",
            "content": {"text/plain": _EXPOSITION, "application/openmetrics-text": _EXPOSITION},
        }
    },
)
def metrics(request: Request) -> Response:
    """The server's metrics, for Prometheus to scrape (families listed in the README)."""
    body, content_type = request.app.state.metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)
