"""int8 dynamic quantisation of a bundle's transformer text tower (ONNX Runtime's own tool).

Dynamic quantisation stores MatMul weights as int8 and quantises activations on the fly:
the text tower shrinks ~4x and runs faster on CPU. It changes the model, so the result is a
new bundle with a new model id; whether to use it is decided by measurement
(``snapshop model eval`` on both), not assumed.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from app.embedding.bundle import (
    IMAGE_MODEL_FILE,
    TEXT_MODEL_FILE,
    load_manifest,
    sha256_file,
    write_bundle_manifest,
)
from app.embedding.export import ExportError


def quantize_text_tower(src: Path, out: Path) -> Path:
    """Copy bundle ``src`` to ``out`` with an int8 (dynamic) ``text.onnx``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    manifest = load_manifest(src)
    if out.exists():
        raise ExportError(f"{out} already exists; choose another output directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        for name in manifest.files:
            if name != TEXT_MODEL_FILE:
                shutil.copyfile(src / name, tmp / name)
        # MatMul only: the attention and feed-forward weights, where the bytes and time are.
        quantize_dynamic(
            src / TEXT_MODEL_FILE,
            tmp / TEXT_MODEL_FILE,
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
        )
        image_sha = sha256_file(tmp / IMAGE_MODEL_FILE)[:12]
        text_sha = sha256_file(tmp / TEXT_MODEL_FILE)[:8]
        quantized = dataclasses.replace(
            manifest,
            model_id=f"{manifest.arch}:{manifest.pretrained}:{image_sha}:text-int8-{text_sha}",
            files={},
            extra={**manifest.extra, "quantized": {"text": "int8-dynamic-matmul"}},
        )
        write_bundle_manifest(tmp, quantized)
        tmp.chmod(0o755)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
