"""Search latency under concurrent load: with and without micro-batching, same run, same queries.

Drives ``SearchService.search`` (what the API runs, minus HTTP) from ``concurrency`` threads over
a fixed list of dev queries. Reports p50/p95/p99 latency and queries/s per mode. The two modes
alternate, each run ``rounds`` times, so drift on a noisy machine falls on both alike.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.benchmarks.stats import latency_summary
from app.search.query import SearchQuery
from app.search.service import SearchService


def _load(service: SearchService, queries: Sequence[SearchQuery], concurrency: int) -> list[float]:
    def one(q: SearchQuery) -> float:
        t = time.perf_counter()
        service.search(q)
        return (time.perf_counter() - t) * 1000

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, queries))


def bench_search(
    plain: SearchService,
    batched: SearchService,
    queries: Sequence[SearchQuery],
    concurrency: int = 8,
    rounds: int = 2,
) -> dict[str, Any]:
    _load(plain, queries[: concurrency * 2], concurrency)  # warm-up (first runs allocate)
    results: dict[str, list[float]] = {"baseline": [], "micro_batch": []}
    seconds = {"baseline": 0.0, "micro_batch": 0.0}
    for _ in range(rounds):
        for name, service in (("baseline", plain), ("micro_batch", batched)):
            t = time.perf_counter()
            results[name] += _load(service, queries, concurrency)
            seconds[name] += time.perf_counter() - t
    base = latency_summary(results["baseline"], seconds["baseline"])
    mb = latency_summary(results["micro_batch"], seconds["micro_batch"])
    return {
        "benchmark": "search",
        "concurrency": concurrency,
        "rounds": rounds,
        "queries": len(queries),
        "baseline": {"name": "one model run per query", **base},
        "micro_batch": {"name": "micro-batched model runs", **mb},
        "p95_ratio": round(mb["p95_ms"] / base["p95_ms"], 3) if base["p95_ms"] else None,
        "qps_ratio": round(mb["qps"] / base["qps"], 3) if base["qps"] else None,
        "machine": {"cpus": os.cpu_count(), "model": plain.encoder.model_id},
    }
