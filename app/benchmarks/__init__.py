"""``snapshop bench``: measured speed, always against a baseline measured in the same run.

``run`` drives the whole benchmark (``snapshop bench --sizes ...``) over the parts beside it:
``queries`` (the typed, photo and photo + text requests), ``synthetic`` (catalog-shaped extra
points), ``sized_store`` (a store of N points, cached under the data dir), ``server`` (the real
server in a subprocess, its memory), ``http_load`` (concurrent loopback clients),
``ann_recall`` (HNSW and int8 against exact search), ``torch_encoder`` and ``naive`` (the naive
stack), ``roofline`` (the encoder against this CPU's matmul speed), ``stats`` (latency
summaries) and ``report`` (the results file and the README table). ``ingest`` and ``search``
are the older single benchmarks (``snapshop bench ingest|search``).
"""

from collections.abc import Callable

# (step, done, total): how a long step reports progress; the CLI draws it as a progress bar.
Progress = Callable[[str, int, int], None]


def no_progress(step: str, done: int, total: int) -> None:
    """The ``Progress`` of callers that show none."""
