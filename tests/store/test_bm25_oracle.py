"""The engine's BM25 leg against ``rank-bm25`` as a reference, on the dev catalog's text queries.

The oracle gets the engine's own terms (``EdgeStore.bm25_tokens``: qdrant-edge exposes no
tokenizer, and stemming/stopwords are its business), then scores with rank-bm25's Okapi
implementation set to the engine's parameters: k1 = 1.2, b = 0.75, and the IDF that Qdrant's
``Modifier.Idf`` uses, ln(1 + (N - n + 0.5) / (n + 0.5)). What this checks is everything after
tokenization: term statistics, IDF inside the engine, length normalisation, top-k selection.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from app.evaluation.queries import read_text_queries
from app.store import EdgeStore, PointRecord, point_id
from ingestion.catalog import read_catalog
from ingestion.documents import image_payload, product_text


class LuceneIdfBM25(BM25Okapi):
    """Okapi BM25 with the non-negative IDF of Lucene and Qdrant (Robertson-Sparck Jones + 1)."""

    def _calc_idf(self, nd: dict[int, int]) -> None:
        for term, freq in nd.items():
            self.idf[term] = math.log(1 + (self.corpus_size - freq + 0.5) / (freq + 0.5))


@pytest.fixture(scope="module")
def indexed(
    tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path
) -> tuple[EdgeStore, list[str], list[str]]:
    catalog = read_catalog(catalog_dir)
    texts = [product_text(p) for p in catalog.products]
    store = EdgeStore(tmp_path_factory.mktemp("bm25") / "qdrant")
    store.ensure_collection(4, "bm25-only", texts)
    rng = np.random.default_rng(0)  # the dense vectors play no part here
    store.upsert(
        [
            PointRecord(
                id=point_id(p.product_id, p.image_files[0]),
                image_vector=rng.normal(size=4).astype(np.float32),
                text_vector=rng.normal(size=4).astype(np.float32),
                text=text,
                payload=image_payload(p, p.image_files[0], catalog.image_path(p.image_files[0])),
            )
            for p, text in zip(catalog.products, texts, strict=True)
        ]
    )
    yield store, [p.product_id for p in catalog.products], texts
    store.close()


def test_engine_bm25_top10_matches_rank_bm25_on_dev_queries(
    indexed: tuple[EdgeStore, list[str], list[str]], catalog_dir: Path
) -> None:
    store, ids, texts = indexed
    oracle = LuceneIdfBM25([store.bm25_tokens(t) for t in texts], k1=1.2, b=0.75)
    assert oracle.avgdl == pytest.approx(store.info().extra["bm25_avg_len"])
    queries = read_text_queries(catalog_dir / "dev_queries" / "text_queries.csv")
    assert len(queries) == 60
    row = {pid: i for i, pid in enumerate(ids)}
    compared = 0
    for q in queries:
        terms = list(dict.fromkeys(store.bm25_tokens(q.text)))  # engine queries count each once
        scores = oracle.get_scores(terms)
        best = np.sort(scores)[::-1][:10]
        best = best[best > 0]
        hits = store.search_bm25(q.text, 10)
        assert len(hits) == len(best), q.text
        for rank, hit in enumerate(hits):
            mine = scores[row[hit.payload["product_id"]]]
            # Same score at every rank: a different product is allowed only in a tie.
            assert mine == pytest.approx(best[rank], rel=1e-4), (q.text, rank)
            assert hit.score == pytest.approx(mine, rel=1e-4), (q.text, rank)
        compared += len(hits)
    assert compared > 400  # most queries fill their top 10
