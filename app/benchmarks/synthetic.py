"""Synthetic products shaped like a real catalog, to benchmark a store of 100k or 1M points.

Each synthetic product is a new product between a real one, picked at random (so the category
mix is the real one), and one of that product's nearest real neighbours of the same category,
as SMOTE oversamples a class (Chawla et al., "SMOTE: Synthetic Minority Over-sampling
Technique", JAIR 2002):

- every named vector (image, text, instance) is ``a + t (b - a)`` for the two products' vectors
  a and b, t uniform in [0, 1], plus Gaussian noise with the covariance of the real catalog's
  nearest-neighbour differences (so it moves along the directions real products differ in),
  renormalised. Neighbours are found on the image vectors, so one synthetic product sits
  between the same two products in every space;
- the title swaps about a third of its words for words of other titles of the same category,
  so BM25 sees the same vocabulary, document lengths and term frequencies;
- the payload keeps every field of the source (category path and ancestors, attributes,
  price, image) under a new, unique product id.

Why this shape (dev catalog, image vectors; bench/README.md has the text ones). A synthetic-only
sample as large as the real catalog, against the real catalog: median nearest-neighbour cosine
0.92 (real 0.89), participation ratio of the vectors 16.4 (16.8) and of nearest-neighbour
differences 65 (62), hubness (skew of 10-occurrence) 1.07 (0.99). The first generator, every
point a noisy copy of one real product with noise equal in all directions, gave 0.78, 25.9,
269 and 1.25: at 1M, ~300 copies around each real product formed star-shaped clusters no
real catalog has, and HNSW found 0.53-0.7 of their exact top 10.
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
SYNTH_VERSION = 2
NEIGHBOURS = 10  # a synthetic product lies between its source and one of these
# Noise on top of the interpolation, as a share of a nearest-neighbour move. Of 0.5, 0.75 and
# 1, 0.5 gave the synthetic sample closest to the real catalog on the four measures above.
NOISE_SCALE = 0.5
NEIGHBOUR_CHUNK = 1_000  # rows per block of the neighbour search (memory stays N x 1,000)
SWAP_SHARE = 0.3  # share of a title's words replaced by same-category words
CALIBRATION_SAMPLE = 2_000  # real points whose nearest neighbours set the noise
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
    """The noise one named vector gets: ``alpha * (z @ basis)`` with z ~ N(0, I).

    ``basis`` is a square root of the real nearest-neighbour differences' second moment
    (``basis.T @ basis`` is that matrix), so the noise varies along the directions real
    neighbours differ in, in the same proportions.
    """

    basis: np.ndarray  # (dim, dim) float32
    alpha: float
    target_cosine: float  # the real catalog's median nearest-neighbour cosine

    def draw(self, count: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((count, self.basis.shape[0]), np.float32)
        out: np.ndarray = self.alpha * (z @ self.basis)
        return out

    def describe(self) -> dict[str, float]:
        return {
            "alpha": round(self.alpha, 4),
            "target_cosine": round(self.target_cosine, 4),
            "participation_ratio": round(participation_ratio(self.basis.T @ self.basis), 1),
        }


def participation_ratio(second_moment: np.ndarray) -> float:
    """How many dimensions a spread really uses: (sum of eigenvalues)^2 / sum of their squares
    (the dimension count for noise equal in every direction, 1 for a single direction)."""
    lam = np.clip(np.linalg.eigvalsh(second_moment.astype(np.float64)), 0, None)
    return float(lam.sum() ** 2 / (lam**2).sum()) if lam.any() else 0.0


def calibrate(rows: np.ndarray, rng: np.random.Generator) -> Perturbation:
    """Noise for ``rows`` (unit vectors) shaped and sized like real nearest-neighbour moves.

    A sample of points and their nearest neighbours give the differences d; the noise's
    covariance is proportional to E[d d^T]. For a unit vector v and noise n of covariance
    a^2 C, cos(v, v + n) is close to 1 / sqrt(1 + a^2 tr C), so a = sqrt(1/c^2 - 1) / sqrt(tr C)
    gives the target cosine c (the median nearest-neighbour cosine).
    """
    dim = rows.shape[1]
    if len(rows) < 2:
        return Perturbation(np.zeros((dim, dim), np.float32), 0.0, 1.0)
    sample = rng.choice(len(rows), size=min(len(rows), CALIBRATION_SAMPLE), replace=False)
    sims = rows[sample] @ rows.T
    sims[np.arange(len(sample)), sample] = -np.inf  # a point is not its own neighbour
    nearest = sims.argmax(axis=1)
    target = float(np.clip(np.median(sims.max(axis=1)), 0.05, 0.999))
    diffs = (rows[sample] - rows[nearest]).astype(np.float64)
    # No centring: the pair (a, b) is as likely as (b, a), so the differences' mean is 0.
    moment = diffs.T @ diffs / len(diffs)
    lam, vecs = np.linalg.eigh(moment)
    basis = (np.sqrt(np.clip(lam, 0, None))[:, None] * vecs.T).astype(np.float32)
    total = float(np.clip(lam, 0, None).sum())
    if total <= 0:
        return Perturbation(basis, 0.0, 1.0)
    return Perturbation(basis, float(np.sqrt(1 / target**2 - 1) / np.sqrt(total)), target)


def same_category_neighbours(rows: np.ndarray, categories: list[str], k: int) -> np.ndarray:
    """Each row's ``k`` nearest other rows (cosine), those of its own category first: (n, k).

    Rows of a category smaller than ``k + 1`` take their remaining neighbours from the rest.
    """
    n = len(rows)
    k = min(k, n - 1)
    codes = np.unique(np.asarray(categories), return_inverse=True)[1]
    out = np.empty((n, max(k, 0)), np.int64)
    for start in range(0, n, NEIGHBOUR_CHUNK):
        end = min(start + NEIGHBOUR_CHUNK, n)
        sims = rows[start:end] @ rows.T
        sims[np.arange(end - start), np.arange(start, end)] = -np.inf
        sims[codes[start:end, None] != codes[None, :]] -= 4.0  # below any same-category cosine
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k else sims[:, :0].astype(int)
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[start:end] = np.take_along_axis(top, order, axis=1)
    return out


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
        categories = [str(p.get("category_path", "")) for p in real.payloads]
        self._neighbours = same_category_neighbours(
            real.vectors[IMAGE_VECTOR], categories, NEIGHBOURS
        )

    def describe(self) -> dict[str, Any]:
        return {
            "version": SYNTH_VERSION,
            "seed": self.seed,
            "title_swap_share": SWAP_SHARE,
            "neighbours": NEIGHBOURS,
            "noise_scale": NOISE_SCALE,
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
            others = self._partners(sources, rng)
            t = rng.random((size, 1), np.float32)
            vectors = {}
            for name, p in self.noise.items():
                a, b = self.real.vectors[name][sources], self.real.vectors[name][others]
                vectors[name] = _unit(a + t * (b - a) + NOISE_SCALE * p.draw(size, rng))
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

    def _partners(self, sources: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each source, one of its nearest same-category real products (itself if the
        catalog has one product)."""
        if self._neighbours.shape[1] == 0:
            return sources
        pick = rng.integers(0, self._neighbours.shape[1], size=len(sources))
        out: np.ndarray = self._neighbours[sources, pick]
        return out

    def nearest_real_cosine(self, sample: int = 500) -> dict[str, float]:
        """Median cosine of a sample of synthetic vectors to the nearest real one, per vector:
        how close to the real catalog the generator puts its points."""
        points = [p for b in self.batches(sample, batch=sample) for p in b]
        got: dict[str, list[np.ndarray | None]] = {
            IMAGE_VECTOR: [p.image_vector for p in points],
            TEXT_VECTOR: [p.text_vector for p in points],
            INSTANCE_VECTOR: [p.instance_vector for p in points],
        }
        out = {}
        for name, rows in self.real.vectors.items():
            mine = np.stack([v for v in got.get(name, []) if v is not None])
            out[name] = round(float(np.median((mine @ rows.T).max(axis=1))), 4)
        return out
