"""GPU proof for a model bundle: CUDA provider vs CPU parity, and GPU throughput.

Run on a machine with an NVIDIA GPU and onnxruntime-gpu:

    python scripts/gpu_check.py BUNDLE_DIR [--json OUT]

Fails (exit 1) if CUDA cannot be used, or if any CUDA embedding differs from the CPU one by a
cosine below 0.999. Prints images/s at batch 1, 32 and 256 on CUDA (with I/O binding, as the
Encoder runs it) next to the CPU numbers measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from app.embedding import Encoder, ProviderError


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (200, 160, 3), dtype=np.uint8)) for _ in range(n)]


def _throughput(encoder: Encoder, batch: int, seconds: float = 3.0) -> float:
    images = _images(batch, seed=batch)
    encoder.encode_images(images)  # warm-up: allocations, cuDNN algorithm search
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        encoder.encode_images(images)
        done += batch
    return done / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    try:
        gpu = Encoder(args.bundle, device="cuda", max_batch=256)
    except ProviderError as exc:
        print(f"CUDA not usable: {exc}", file=sys.stderr)
        return 1
    cpu = Encoder(args.bundle, device="cpu", max_batch=256)
    images = _images(64)
    texts = [f"product number {i} in red, blue or black" for i in range(64)]
    cos_img = (gpu.encode_images(images) * cpu.encode_images(images)).sum(axis=1)
    cos_txt = (gpu.encode_texts(texts) * cpu.encode_texts(texts)).sum(axis=1)
    report: dict[str, object] = {
        "model": gpu.model_id,
        "provider": gpu.provider,
        "parity_min_cos": {"image": float(cos_img.min()), "text": float(cos_txt.min())},
        "cuda_img_per_s": {b: round(_throughput(gpu, b), 1) for b in (1, 32, 256)},
        "cpu_img_per_s": {b: round(_throughput(cpu, b, 2.0), 1) for b in (1, 32)},
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    ok = min(cos_img.min(), cos_txt.min()) >= 0.999 and gpu.provider == "CUDAExecutionProvider"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
