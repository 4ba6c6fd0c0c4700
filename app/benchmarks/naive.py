"""The naive stack: what a first version of the same search would be, for the speed-up ratio.

The model in PyTorch eager mode, BM25 by rank-bm25 over the products' texts (whitespace
tokens, every document scored in Python), the vectors in qdrant-client's local mode (in
memory, brute force in numpy), and the legs run one after another. It answers the same
requests with the same profile: same legs, candidates, photo views, exact-match rule and RRF
fusion (the service's own pure functions), so its answers can be compared with the server's.
Only the engines and the runtime differ.

Its setup (loading every point into Python) is timed apart and not counted in its latency.
``compare`` alternates it with the server request by request, so the speed-up is paired.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from app.benchmarks import Progress
from app.benchmarks.http_load import TIMEOUT_S, send
from app.benchmarks.queries import BenchRequest
from app.benchmarks.stats import latency_summary
from app.benchmarks.synthetic import iter_points, payload_text
from app.benchmarks.torch_encoder import TorchEncoder
from app.profiles.model import DEFAULT_PROFILE
from app.search.encode import QueryEmbedder
from app.search.leg_names import (
    BM25,
    IMAGE_INSTANCE,
    IMAGE_LEGS,
    IMAGE_TO_IMAGE,
    IMAGE_TO_TEXT,
    TEXT_LEGS,
    TEXT_TO_IMAGE,
    TEXT_TO_TEXT,
)
from app.search.ranking import fuse_legs, group_hits
from app.search.results import judged_by_key
from app.search.running import EXACT_CHECKED, candidate_limit
from app.store import IMAGE_VECTOR, INSTANCE_VECTOR, TEXT_VECTOR, EdgeStore, Hit

COLLECTION = "products"
# leg -> the stored vector it searches (BM25 apart)
LEG_VECTOR = {
    IMAGE_TO_IMAGE: IMAGE_VECTOR,
    IMAGE_TO_TEXT: TEXT_VECTOR,
    IMAGE_INSTANCE: INSTANCE_VECTOR,
    TEXT_TO_IMAGE: IMAGE_VECTOR,
    TEXT_TO_TEXT: TEXT_VECTOR,
}


def tokens(text: str) -> list[str]:
    """rank-bm25's usual tokenisation in a first version: lower case, split on whitespace."""
    return text.lower().split()


class NaiveStack:
    """Torch eager encoder + qdrant-client local mode + rank-bm25, legs in sequence."""

    def __init__(self, store: EdgeStore, encoder: TorchEncoder, progress: Progress) -> None:
        from qdrant_client import QdrantClient, models
        from rank_bm25 import BM25Okapi  # type: ignore[import-untyped]

        started = time.perf_counter()
        self.encoder = encoder
        self.embedder = QueryEmbedder(encoder)
        self.client = QdrantClient(":memory:")
        total = store.count()
        self.doc_ids: list[str] = []
        self.doc_products: list[str] = []
        docs: list[list[str]] = []
        self.vectors: tuple[str, ...] = ()  # the stored vectors' names, once the first batch came
        for ids, payloads, vectors in iter_points(store):
            if not self.vectors:
                config = {
                    name: models.VectorParams(size=rows.shape[1], distance=models.Distance.COSINE)
                    for name, rows in vectors.items()
                }
                self.client.create_collection(COLLECTION, vectors_config=config)
                self.vectors = tuple(vectors)
            self.client.upsert(
                COLLECTION,
                [
                    models.PointStruct(
                        id=pid,
                        vector={name: rows[j].tolist() for name, rows in vectors.items()},
                        payload=payload,
                    )
                    for j, (pid, payload) in enumerate(zip(ids, payloads, strict=True))
                ],
            )
            self.doc_ids += ids
            self.doc_products += [str(p.get("product_id", "")) for p in payloads]
            docs += [tokens(payload_text(p)) for p in payloads]
            progress("naive stack: loading", len(self.doc_ids), total)
        self.bm25 = BM25Okapi(docs)
        self.setup_s = time.perf_counter() - started

    def _dense(self, leg: str, vector: np.ndarray, limit: int) -> list[Hit]:
        found = self.client.query_points(
            COLLECTION,
            query=vector.tolist(),
            using=LEG_VECTOR[leg],
            limit=limit,
            with_payload=True,
        ).points
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in found]

    def _bm25(self, text: str, limit: int) -> list[Hit]:
        scores = self.bm25.get_scores(tokens(text))
        best = np.argsort(-scores)[:limit]
        return [
            Hit(self.doc_ids[i], float(scores[i]), {"product_id": self.doc_products[i]})
            for i in best
            if scores[i] > 0
        ]

    def search(self, request: BenchRequest, k: int = 10) -> list[str]:
        """The top ``k`` product ids for ``request``, every step in sequence."""
        profile = DEFAULT_PROFILE
        spec = profile.spec()
        limit = candidate_limit(profile.candidates, 0, k)
        timings: dict[str, float] = {}
        vectors: dict[str, np.ndarray] = {}
        whole: dict[str, np.ndarray] = {}
        available: list[str] = []
        if request.image is not None:
            photo = self.embedder.photo(request.image, None, timings)
            vectors[IMAGE_TO_IMAGE] = vectors[IMAGE_TO_TEXT] = photo.image
            whole[IMAGE_TO_IMAGE] = photo.whole_image
            available += [IMAGE_TO_IMAGE, IMAGE_TO_TEXT]
            if photo.instance is not None and INSTANCE_VECTOR in self.vectors:
                vectors[IMAGE_INSTANCE] = photo.instance
                if photo.whole_instance is not None:
                    whole[IMAGE_INSTANCE] = photo.whole_instance
                available.append(IMAGE_INSTANCE)
        if request.text:
            vectors[TEXT_TO_IMAGE] = vectors[TEXT_TO_TEXT] = self.embedder.text(
                request.text, timings
            )
            available += list(TEXT_LEGS)
        wanted = spec.active([leg for leg in (*IMAGE_LEGS, *TEXT_LEGS) if leg in available])
        hits = {
            leg: self._bm25(request.text or "", limit)
            if leg == BM25
            else self._dense(leg, vectors[leg], limit)
            for leg in wanted
        }
        judged = {}
        if profile.exact_match is not None:
            searched = {
                leg: self._dense(leg, vec, EXACT_CHECKED)
                for leg, vec in whole.items()
                if leg in wanted
            }
            judged = judged_by_key(searched, True)
        lists = {leg: group_hits(leg_hits, True) for leg, leg_hits in hits.items()}
        fused, _ = fuse_legs(lists, spec, profile.exact_match, judged)
        return [f.item for f in fused[:k]]

    def close(self) -> None:
        self.client.close()
        self.embedder.close()


def compare(stack: NaiveStack, url: str, requests: Sequence[BenchRequest]) -> dict[str, Any]:
    """The same requests through the server (one client, over HTTP) and the naive stack, in
    turn, request by request: load that drifts on a shared machine falls on both alike.

    Returns both latency summaries, the p50 speed-up, and how much of the naive stack's top 10
    the server also returned (1.0 = the same products)."""
    ours: list[float] = []
    naive: list[float] = []
    shares: list[float] = []
    with httpx.Client(timeout=TIMEOUT_S) as client:
        send(client, url, requests[0])  # warm-up of both: first runs allocate
        stack.search(requests[0])
        for request in requests:
            t = time.perf_counter()
            response = send(client, url, request)
            response.raise_for_status()
            served = [str(r["product_id"]) for r in response.json()["results"]]
            ours.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            theirs = stack.search(request)
            naive.append((time.perf_counter() - t) * 1000)
            if theirs:
                shares.append(len(set(served) & set(theirs)) / len(theirs))
    ours_s = latency_summary(ours, sum(ours) / 1000)
    naive_s = latency_summary(naive, sum(naive) / 1000)
    return {
        "server": ours_s,
        "naive": naive_s,
        "speedup_p50": round(naive_s["p50_ms"] / ours_s["p50_ms"], 2),
        "top10_overlap_with_server": round(float(np.mean(shares)), 3) if shares else None,
    }


def describe(stack: NaiveStack) -> dict[str, Any]:
    return {
        "encoder": f"PyTorch eager ({stack.encoder.weights}), {stack.encoder.threads} threads",
        "bm25": "rank-bm25 BM25Okapi, lower-case whitespace tokens",
        "vectors": "qdrant-client local mode (in memory)",
        "legs": "one after another",
        "setup_s": round(stack.setup_s, 1),
    }
