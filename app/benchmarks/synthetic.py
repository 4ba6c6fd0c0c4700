"""Synthetic products shaped like a real catalog, to benchmark a store of 100k or 1M points.

Each synthetic product copies a real one picked at random (so the category mix is the real
one) and changes it as a new product of that kind would differ:

- every named vector (image, text, instance) gets Gaussian noise scaled to the real vectors'
  per-dimension spread, then is renormalised. The noise is calibrated so that a synthetic
  vector's cosine to its source is the real catalog's typical nearest-neighbour cosine: the
  new points sit in the catalog's own clusters as densely as real neighbours do, which is what
  HNSW and filtered search feel (isotropic random vectors would make both look easier);
- the title swaps about a third of its words for words of other titles of the same category,
  so BM25 sees the same vocabulary, document lengths and term frequencies;
- the payload keeps every field of the source (category path and ancestors, attributes,
  price, image) under a new, unique product id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.store import (
    IMAGE_VECTOR,
    INSTANCE_VECTOR,
    TEXT_VECTOR,
    EdgeStore,
    PointRecord,
    point_id,
)
from ingestion.catalog import CatalogProduct
from ingestion.documents import product_text

# Bump when the generator changes what it makes, so cached stores are rebuilt.
SYNTH_VERSION = 1
SWAP_SHARE = 0.3  # share of a title's words replaced by same-category words
CALIBRATION_SAMPLE = 1_000  # real points whose nearest neighbours set the noise level
READ_BATCH = 1_000


def payload_text(payload: dict[str, Any]) -> str:
    """The BM25 text of a stored point: ``product_text`` of the product its payload describes.

    The engine keeps BM25 terms, not the text; BM25 ignores word order, so the terms come out
    the same as at ingest whatever order the payload's attributes come back in.
    """
    product = CatalogProduct(
        product_id=str(payload.get("product_id", "")),
        title=str(payload.get("title", "")),
        category=str(payload.get("category_path", "")),
        description=str(payload.get("description", "")),
        attributes={str(k): str(v) for k, v in (payload.get("attributes") or {}).items()},
        image_files=tuple(payload.get("images") or ()),
        row=0,
    )
    return product_text(product)


@dataclass(frozen=True)
class RealPoints:
    """Every point of a store, in memory: what sized stores and the naive stack are built from."""

    model_id: str
    dim: int
    instance_dim: int
    ids: list[str]
    payloads: list[dict[str, Any]]
    vectors: dict[str, np.ndarray]  # vector name -> (points, size) float32, unit rows

    @property
    def texts(self) -> list[str]:
        return [payload_text(p) for p in self.payloads]

    def digest(self) -> str:
        """Changes whenever a point is added, removed or re-embedded (its content hash)."""
        h = hashlib.sha256(self.model_id.encode())
        for pid, payload in sorted(zip(self.ids, self.payloads, strict=True)):
            h.update(f"{pid}:{payload.get('content_hash', '')}\n".encode())
        return h.hexdigest()


def iter_points(
    store: EdgeStore, batch: int = READ_BATCH
) -> Iterator[tuple[list[str], list[dict[str, Any]], dict[str, np.ndarray]]]:
    """Every point of ``store`` in batches: (ids, payloads, vector name -> (batch, size))."""
    names = store.dense_vectors()
    ids = [hit.id for hit in store.scan(["product_id"])]
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        payloads = {h.id: h.payload for h in store.retrieve(chunk)}
        vectors = store.vectors(chunk)
        yield (
            chunk,
            [payloads[i] for i in chunk],
            {n: np.stack([vectors[i][n] for i in chunk]).astype(np.float32) for n in names},
        )


def read_points(store: EdgeStore) -> RealPoints:
    """All of ``store``'s points; a clear error when it is empty."""
    info = store.info()
    if info.points == 0 or info.dim is None or info.model_id is None:
        raise ValueError(f"the store at {store.root} is empty: ingest a catalog first")
    ids: list[str] = []
    payloads: list[dict[str, Any]] = []
    parts: dict[str, list[np.ndarray]] = {}
    for chunk_ids, chunk_payloads, vectors in iter_points(store):
        ids += chunk_ids
        payloads += chunk_payloads
        for name, rows in vectors.items():
            parts.setdefault(name, []).append(rows)
    return RealPoints(
        model_id=info.model_id,
        dim=int(info.dim),
        instance_dim=int(info.extra.get("instance_dim", 0)),
        ids=ids,
        payloads=payloads,
        vectors={name: _unit(np.concatenate(rows)) for name, rows in parts.items()},
    )


def _unit(rows: np.ndarray) -> np.ndarray:
    out: np.ndarray = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


@dataclass(frozen=True)
class Perturbation:
    """The noise one named vector gets: ``alpha * spread * N(0, 1)`` per dimension."""

    spread: np.ndarray  # the real vectors' standard deviation per dimension
    alpha: float
    target_cosine: float  # the real catalog's median nearest-neighbour cosine

    def describe(self) -> dict[str, float]:
        return {"alpha": round(self.alpha, 4), "target_cosine": round(self.target_cosine, 4)}


def calibrate(rows: np.ndarray, rng: np.random.Generator) -> Perturbation:
    """Noise for ``rows`` (unit vectors) that puts a copy at the typical neighbour's cosine.

    For a unit vector v and noise n of per-dimension variance (a * s_d)^2, cos(v, v + n) is
    close to 1 / sqrt(1 + a^2 S) with S = sum of s_d^2, so a = sqrt(1/c^2 - 1) / sqrt(S) gives
    the target cosine c.
    """
    spread = rows.std(axis=0).astype(np.float32)
    total = float((spread.astype(np.float64) ** 2).sum())
    if len(rows) < 2 or total <= 0:
        return Perturbation(spread, 0.0, 1.0)
    sample = rng.choice(len(rows), size=min(len(rows), CALIBRATION_SAMPLE), replace=False)
    sims = rows[sample] @ rows.T
    sims[np.arange(len(sample)), sample] = -np.inf  # a point is not its own neighbour
    target = float(np.clip(np.median(sims.max(axis=1)), 0.05, 0.999))
    return Perturbation(spread, float(np.sqrt(1 / target**2 - 1) / np.sqrt(total)), target)


class SyntheticCatalog:
    """Synthetic points drawn from ``real``; the same seed always gives the same points."""

    def __init__(self, real: RealPoints, seed: int = 0) -> None:
        self.real = real
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.noise = {name: calibrate(rows, rng) for name, rows in real.vectors.items()}
        self._titles = [str(p.get("title", "")) for p in real.payloads]
        vocab: dict[str, list[str]] = {}
        for payload, title in zip(real.payloads, self._titles, strict=True):
            vocab.setdefault(str(payload.get("category_path", "")), []).extend(title.split())
        self._vocab = vocab

    def describe(self) -> dict[str, Any]:
        return {
            "version": SYNTH_VERSION,
            "seed": self.seed,
            "title_swap_share": SWAP_SHARE,
            "noise": {name: p.describe() for name, p in self.noise.items()},
        }

    def _title(self, source: int, rng: np.random.Generator) -> str:
        words = self._titles[source].split()
        pool = self._vocab.get(str(self.real.payloads[source].get("category_path", "")), [])
        if not pool:
            return " ".join(words)
        swap = rng.random(len(words)) < SWAP_SHARE
        return " ".join(
            pool[rng.integers(len(pool))] if s else w for w, s in zip(words, swap, strict=True)
        )

    def batches(self, count: int, batch: int = 2_000) -> Iterator[list[PointRecord]]:
        """``count`` synthetic points, ``batch`` at a time (memory stays flat at any count)."""
        rng = np.random.default_rng([self.seed, SYNTH_VERSION])
        n = len(self.real.ids)
        for start in range(0, count, batch):
            size = min(batch, count - start)
            sources = rng.integers(0, n, size=size)
            vectors = {
                name: _unit(
                    self.real.vectors[name][sources]
                    + p.alpha * p.spread * rng.standard_normal((size, len(p.spread)), np.float32)
                )
                for name, p in self.noise.items()
            }
            records = []
            for j, source in enumerate(sources):
                payload = dict(self.real.payloads[source])
                pid = f"synthetic_{start + j:07d}"
                payload.update(
                    product_id=pid, title=self._title(int(source), rng), content_hash="synthetic"
                )
                image_file = str(payload.get("image_file", f"{pid}.jpg"))
                records.append(
                    PointRecord(
                        id=point_id(pid, image_file),
                        image_vector=vectors[IMAGE_VECTOR][j],
                        text_vector=vectors[TEXT_VECTOR][j],
                        text=payload_text(payload),
                        payload=payload,
                        instance_vector=(
                            vectors[INSTANCE_VECTOR][j] if INSTANCE_VECTOR in vectors else None
                        ),
                    )
                )
            yield records

    def achieved_cosine(self, sample: int = 500) -> dict[str, float]:
        """Median cosine of synthetic vectors to their sources, as generated (a check of
        the calibration's approximation)."""
        rng = np.random.default_rng([self.seed, SYNTH_VERSION, 1])
        sources = rng.integers(0, len(self.real.ids), size=sample)
        out = {}
        for name, p in self.noise.items():
            base = self.real.vectors[name][sources]
            noisy = _unit(base + p.alpha * p.spread * rng.standard_normal(base.shape, np.float32))
            out[name] = round(float(np.median((base * noisy).sum(axis=1))), 4)
        return out
