"""Micro-batching: concurrent queries share one model run instead of queueing for the model.

Each caller hands over one input and blocks; a worker thread takes the first input and
everything already queued behind it (up to ``max_batch``), runs the model once on all of them
and hands each caller its row. Inputs that arrive during a run form the next batch, so batches
grow with the load and a lone query waits for nobody ("natural" batching, as Triton's dynamic
batcher does with no queue delay). ``window_ms`` > 0 also waits that long after the first input
for more to arrive. One worker per model also means one model run at a time: concurrent
queries no longer split the cores between several runs of batch 1.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    def __init__(
        self,
        run: Callable[[Sequence[T]], np.ndarray],
        max_batch: int = 16,
        window_ms: float = 0.0,
        name: str = "micro-batcher",
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._window = window_ms / 1000.0
        self._queue: queue.Queue[tuple[T, Future[np.ndarray]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        self.batches = 0  # model runs so far (for measurements)
        self.items = 0

    def __call__(self, item: T) -> np.ndarray:
        future: Future[np.ndarray] = Future()
        self._queue.put((item, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.perf_counter() + self._window
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()  # what is queued already joins the run
                except queue.Empty:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    try:
                        nxt = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if nxt is None:
                    self._queue.put(None)  # closing: finish this batch first
                    break
                batch.append(nxt)
            self.batches += 1
            self.items += len(batch)
            try:
                out = self._run([item for item, _ in batch])
            except BaseException as exc:  # every waiting caller gets the error, none hangs
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for row, (_, future) in zip(out, batch, strict=True):
                future.set_result(row)
