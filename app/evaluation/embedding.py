"""Embedding-level quality of a model bundle, before any store or fusion is involved.

Runs the bundle exactly as search does (ONNX Runtime, our preprocessing and tokenizer) over a
catalog and query sets, scores by brute-force cosine and reports, per route:

- ``photo→image``: query photo vs catalog images (product = its best image);
- ``photo→text``: query photo vs each product's text embedding (same towers, shared space);
- ``photo→fused``: reciprocal-rank fusion of those two lists;
- ``photo→instance``: query photo vs catalog images by the instance vector (bundles with one);
- ``text→image`` and ``text→text``: typed query vs images / vs product texts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.embedding.preprocess import load_image
from app.embedding.runtime import Encoder
from app.evaluation.metrics_table import summarise
from app.evaluation.queries import ImageQuery, TextQuery
from ingestion.catalog import read_catalog
from ingestion.documents import product_text
from reranker import rrf


@dataclass
class CatalogEmbeddings:
    product_ids: list[str]
    image_owner: np.ndarray  # product index of each image row
    images: np.ndarray  # (n_images, dim)
    texts: np.ndarray  # (n_products, dim)
    instances: np.ndarray | None = None  # (n_images, instance_dim) where the bundle has one
    seconds: dict[str, float] = field(default_factory=dict)


def embed_catalog(encoder: Encoder, catalog_dir: Path) -> CatalogEmbeddings:
    catalog = read_catalog(catalog_dir)
    owner: list[int] = []
    pictures = []
    for i, product in enumerate(catalog.products):
        for name in product.image_files:
            try:
                pictures.append(load_image(catalog.image_path(name)))
            except Exception:  # an unreadable image is simply not searchable
                continue
            owner.append(i)
    t0 = time.perf_counter()
    images, instances = encoder.encode_images_with_instance(pictures)
    t1 = time.perf_counter()
    texts = encoder.encode_texts([product_text(p) for p in catalog.products])
    t2 = time.perf_counter()
    return CatalogEmbeddings(
        [p.product_id for p in catalog.products],
        np.asarray(owner),
        images,
        texts,
        instances if encoder.instance_dim else None,
        {"images": t1 - t0, "texts": t2 - t1},
    )


def _rank_by_images(
    cat: CatalogEmbeddings, query: np.ndarray, k: int, rows: np.ndarray | None = None
) -> list[str]:
    """Products by their best image; ``rows``: the images' vectors (default ``cat.images``)."""
    scores = (cat.images if rows is None else rows) @ query
    order = np.argsort(-scores, kind="stable")
    ranked: list[str] = []
    seen: set[int] = set()
    for row in order:
        owner = int(cat.image_owner[row])
        if owner not in seen:
            seen.add(owner)
            ranked.append(cat.product_ids[owner])
            if len(ranked) == k:
                break
    return ranked


def _rank_by_texts(cat: CatalogEmbeddings, query: np.ndarray, k: int) -> list[str]:
    order = np.argsort(-(cat.texts @ query), kind="stable")[:k]
    return [cat.product_ids[i] for i in order]


# The columns of the embedding report; unrounded, unlike the service's tables.
ROUTE_METRICS = ("recall@1", "recall@10", "mrr", "ndcg@10")


def _summary(ranked: Sequence[list[str]], relevant: Sequence[frozenset[str]]) -> dict[str, Any]:
    return summarise(ranked, relevant, ROUTE_METRICS, digits=None)


def evaluate(
    encoder: Encoder,
    cat: CatalogEmbeddings,
    image_queries: Sequence[ImageQuery] = (),
    text_queries: Sequence[TextQuery] = (),
    depth: int = 100,
) -> dict[str, Any]:
    """Metrics per route (see module doc); ``n`` is the number of queries behind each."""
    out: dict[str, Any] = {}
    if image_queries:
        vecs, insts = encoder.encode_images_with_instance(
            [load_image(q.image) for q in image_queries]
        )
        rel = [q.relevant for q in image_queries]
        by_image = [_rank_by_images(cat, v, depth) for v in vecs]
        by_text = [_rank_by_texts(cat, v, depth) for v in vecs]
        fused = [
            [pid for pid, _ in rrf([a, b])][:depth] for a, b in zip(by_image, by_text, strict=True)
        ]
        for name, ranked in (
            ("photo→image", by_image),
            ("photo→text", by_text),
            ("photo→fused", fused),
        ):
            out[name] = _summary(ranked, rel)
        if cat.instances is not None:
            out["photo→instance"] = _summary(
                [_rank_by_images(cat, v, depth, cat.instances) for v in insts], rel
            )
    if text_queries:
        vecs = encoder.encode_texts([q.text for q in text_queries])
        rel = [q.relevant for q in text_queries]
        out["text→image"] = _summary([_rank_by_images(cat, v, depth) for v in vecs], rel)
        out["text→text"] = _summary([_rank_by_texts(cat, v, depth) for v in vecs], rel)
    return out
