"""Writing a bundle from an ``ExportSpec``: tokenizer, ONNX towers, parity, manifest, install.

The bundle is assembled in a temporary directory next to ``out`` and only moved into place
after the ONNX graphs have been checked against torch, so ``out`` either holds a complete,
verified bundle or nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from app.embedding.bundle import (
    FORMAT_VERSION,
    IMAGE_MODEL_FILE,
    MANIFEST_FILE,
    TOKENIZER_FILE,
    Manifest,
    sha256_file,
    write_bundle_manifest,
)
from app.embedding.export.onnx_export import TRACE_BATCH, export_towers, opset_of
from app.embedding.export.openclip_models import import_open_clip
from app.embedding.export.parity import PARITY_MIN_COSINE, check_parity
from app.embedding.export.spec import ExportError, ExportSpec, check_exporter
from app.embedding.tokenizer import load_tokenizer

log = logging.getLogger(__name__)


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse ``out`` unless it is absent, empty, or (with ``overwrite``) a bundle."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"{out} exists and is not a directory")
    replaceable = overwrite and (out / MANIFEST_FILE).is_file()
    if any(out.iterdir()) and not replaceable:
        raise ExportError(
            f"{out} already exists and is not empty; choose another output directory "
            "or delete it first (overwrite=True replaces an existing bundle)"
        )


def _install(tmp: Path, out: Path) -> None:
    """Move the finished bundle into place, replacing an old bundle if allowed."""
    old: Path | None = None
    if out.exists():
        if any(out.iterdir()):
            old = out.with_name(f".{out.name}.old-{int(time.time())}")
            out.rename(old)
        else:
            out.rmdir()
    # mkdtemp makes the directory private (0700); a bundle is meant to be shared.
    tmp.chmod(0o755)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_spec(
    spec: ExportSpec,
    out: Path,
    parity_images: Sequence[Path] = (),
    opset: int | None = None,
    *,
    overwrite: bool = False,
    exporter: str = "auto",
    started: float | None = None,
) -> Manifest:
    """Write ``spec``'s towers as a verified bundle at ``out`` (see module doc)."""
    check_exporter(exporter)
    started = time.perf_counter() if started is None else started
    out = Path(out)
    check_out_dir(out, overwrite)
    open_clip, torch = import_open_clip()
    spec.model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        tokenizer_cfg = spec.write_tokenizer(tmp / TOKENIZER_FILE)
        tokenizer = load_tokenizer(tmp, tokenizer_cfg, spec.context_length)
        exporters = export_towers(torch, spec, tmp, opset, exporter)
        draft = Manifest(
            format_version=FORMAT_VERSION,
            model_id="",
            embed_dim=0,
            tokenizer=tokenizer_cfg,
            files={},
            parity={},
            created_at="",
            **spec.manifest_fields(),
        )
        parity, embed_dim, instance_dim = check_parity(
            open_clip, torch, spec, tmp, draft, tokenizer, parity_images
        )
        image_sha = sha256_file(tmp / IMAGE_MODEL_FILE)
        manifest = dataclasses.replace(
            draft,
            model_id=f"{spec.arch}:{spec.pretrained}:{image_sha[:12]}",
            embed_dim=embed_dim,
            instance_dim=instance_dim,
            parity=parity,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            extra={
                **spec.extra,
                "exporter": exporters,
                "opset": opset_of(tmp / IMAGE_MODEL_FILE),
                "trace_batch": TRACE_BATCH,
                "parity_images": [Path(p).name for p in parity_images],
                "parity_threshold": PARITY_MIN_COSINE,
                "versions": _versions(),
                "export_seconds": round(time.perf_counter() - started, 2),
            },
        )
        manifest = write_bundle_manifest(tmp, manifest)
        _install(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote bundle %s (%s) in %.1fs", out, manifest.model_id, time.perf_counter() - started)
    return manifest


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for dist in ("torch", "open-clip-torch", "onnx", "onnxruntime-gpu", "onnxruntime"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found
