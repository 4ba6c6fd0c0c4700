"""Latency summaries shared by the benchmarks: percentiles and throughput of a set of requests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def latency_summary(latencies_ms: Sequence[float], seconds: float) -> dict[str, Any]:
    """Requests, p50/p95/p99 milliseconds and queries/s of requests that took ``seconds``."""
    if not latencies_ms:
        return {"requests": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "qps": None}
    arr = np.asarray(latencies_ms, dtype=np.float64)
    return {
        "requests": len(arr),
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p95_ms": round(float(np.percentile(arr, 95)), 1),
        "p99_ms": round(float(np.percentile(arr, 99)), 1),
        "qps": round(len(arr) / seconds, 1) if seconds > 0 else None,
    }
