"""MicroBatcher: concurrent callers share runs, each gets its own row, errors reach everyone."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.search.batching import MicroBatcher


def test_concurrent_calls_are_batched_and_answered_row_by_row() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def run(items: Sequence[int]) -> np.ndarray:
        gate.wait(5)  # hold the first run so the rest pile up into one batch
        sizes.append(len(items))
        return np.asarray([[x, x * x] for x in items], dtype=np.float32)

    batcher = MicroBatcher(run, max_batch=16)  # no window: what queues during a run batches
    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            futures = [pool.submit(batcher, i) for i in range(12)]
            gate.set()
            rows = [f.result(timeout=10) for f in futures]
        assert [r.tolist() for r in rows] == [[i, i * i] for i in range(12)]
        assert sum(sizes) == 12 and len(sizes) < 12  # fewer model runs than queries
        assert batcher.items == 12 and batcher.batches == len(sizes)
    finally:
        batcher.close()


def test_a_failing_run_fails_every_caller_in_it() -> None:
    def run(items: Sequence[str]) -> np.ndarray:
        raise RuntimeError("model exploded")

    batcher = MicroBatcher(run, window_ms=20)
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = [pool.submit(batcher, s) for s in "abc"]
            for f in futures:
                with pytest.raises(RuntimeError, match="model exploded"):
                    f.result(timeout=10)
        # The worker survives: the next call is served.
        batcher._run = lambda items: np.zeros((len(items), 1))  # type: ignore[method-assign]
        assert batcher("d").tolist() == [0.0]
    finally:
        batcher.close()
