"""Concurrent loopback clients: N threads, each with its own keep-alive connection, sending the
requests of one cell (one query mode at one concurrency) as fast as answers come back.

A typed query is a JSON ``POST /v1/search``; a photo (with or without words) is the multipart
form the shopper page sends. Latency is measured per request from sending to the parsed
answer; throughput is the cell's requests over its wall time. Any answer but 200 is an error,
kept with its status and reason, never a latency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.benchmarks.queries import BenchRequest
from app.benchmarks.stats import latency_summary

TIMEOUT_S = 120.0
K = 10


@dataclass
class CellResult:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            **latency_summary(self.latencies_ms, self.seconds),
            "errors": len(self.errors),
            "error_samples": self.errors[:3],
        }


def send(client: httpx.Client, url: str, request: BenchRequest) -> httpx.Response:
    """One search, sent as the shopper page sends it."""
    if request.image is None:
        return client.post(f"{url}/v1/search", json={"q": request.text, "k": K})
    data = {"k": str(K)}
    if request.text:
        data["q"] = request.text
    files = {"image": (f"{request.name}.jpg", request.image, "image/jpeg")}
    return client.post(f"{url}/v1/search", data=data, files=files)


def run_cell(url: str, requests: Sequence[BenchRequest], clients: int) -> CellResult:
    """Send ``requests`` from ``clients`` threads (each takes the next unsent one)."""
    result = CellResult()
    lock = threading.Lock()
    next_index = iter(range(len(requests)))
    start = threading.Barrier(clients + 1)

    def client_loop() -> None:
        with httpx.Client(timeout=TIMEOUT_S) as client:
            start.wait()
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                request = requests[i]
                t = time.perf_counter()
                try:
                    response = send(client, url, request)
                    ok = response.status_code == 200
                    if ok:  # read as a client reads it, which also checks the answer's shape
                        [str(r["product_id"]) for r in response.json()["results"]]
                    ms = (time.perf_counter() - t) * 1000
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                    with lock:
                        result.errors.append(f"{request.mode} {request.name}: {exc!r}")
                    continue
                with lock:
                    if not ok:
                        reason = response.text[:200]
                        result.errors.append(
                            f"{request.mode} {request.name}: HTTP {response.status_code} {reason}"
                        )
                        continue
                    result.latencies_ms.append(ms)

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - t0
    return result
