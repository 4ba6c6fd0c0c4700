"""The image encoder against this CPU's arithmetic peak: how much of the hardware the model uses.

The peak is a float32 matrix product (2048 x 2048, the BLAS numpy links, the encoder's thread
count): what dense arithmetic reaches on these cores. The model's work per image is counted
from its ONNX graph (``app.embedding.flops``). Achieved GFLOP/s = that work x images/s of the
model alone (preprocessed batches of 32, so decoding and resizing are not counted against it).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from PIL import Image

from app.embedding.benchmark import image_latency, median_ms, text_latency
from app.embedding.bundle import IMAGE_MODEL_FILE
from app.embedding.flops import gflops
from app.embedding.runtime import Encoder

MATMUL_N = 2048


def matmul_gflops(threads: int, n: int = MATMUL_N, repeats: int = 5) -> float:
    """GFLOP/s of an n x n float32 matrix product on ``threads`` BLAS threads (median run)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b  # warm-up: the first product allocates and spins up the threads
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            runs.append(time.perf_counter() - t)
    return 2 * n**3 / float(np.median(runs)) / 1e9


def encoder_timings(encoder: Encoder, repeats: int = 5) -> dict[str, Any]:
    """ms per image (batch 1 and 32, preprocessing included), ms per text, and the roofline."""
    out: dict[str, Any] = {
        "provider": encoder.provider,
        "threads": encoder.threads,
        "image_ms_per_image": {
            str(batch): round(image_latency(encoder, batch, repeats), 2) for batch in (1, 32)
        },
        "text_ms_per_text": {
            str(batch): round(text_latency(encoder, batch, repeats), 2) for batch in (1, 32)
        },
    }
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (170, 128, 3), dtype=np.uint8)) for _ in range(32)
    ]
    pixels = encoder.preprocess(images)
    model_ms = median_ms(lambda: encoder.encode_pixels_with_instance(pixels), repeats) / 32
    out["model_only_ms_per_image_batch32"] = round(model_ms, 2)
    work = gflops(encoder.bundle_dir / IMAGE_MODEL_FILE)
    peak = matmul_gflops(encoder.threads, repeats=repeats)
    achieved = work / (model_ms / 1000)
    out["roofline"] = {
        "model_gflops_per_image": round(work, 3),
        "matmul_gflops": round(peak, 1),
        "achieved_gflops_batch32": round(achieved, 1),
        "percent_of_matmul": round(100 * achieved / peak, 1),
    }
    return out
