"""Export a model to a model bundle (ONNX towers + tokenizer + manifest).

This is the only part of ``app.embedding`` that needs torch and open_clip; both are imported
inside functions so that importing ``app.embedding`` stays torch-free. The package, by seam:

- ``spec``: ``ExportSpec`` (what an export works from) and ``ExportError``;
- ``openclip_models``: open_clip architectures and their weights, as an ``ExportSpec``;
- ``onnx_export``: the two towers traced to ONNX with a dynamic batch axis;
- ``parity``: ONNX Runtime checked against torch (graphs, tokenizer, preprocessing);
- ``writer``: the bundle assembled, verified and moved into place (``export_spec``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from app.embedding.bundle import Manifest
from app.embedding.export.openclip_models import openclip_spec
from app.embedding.export.spec import EXPORTERS, ExportError, ExportSpec, check_exporter
from app.embedding.export.writer import check_out_dir, export_spec

__all__ = ["EXPORTERS", "ExportError", "ExportSpec", "export_bundle", "export_spec"]


def export_bundle(
    arch: str,
    pretrained: str,
    out: Path,
    checkpoint: Path | None = None,
    parity_images: Sequence[Path] = (),
    opset: int | None = None,
    *,
    overwrite: bool = False,
    exporter: str = "auto",
) -> Manifest:
    """Export ``arch`` with ``pretrained`` weights ("none", an open_clip tag) or a local
    ``checkpoint`` into the bundle directory ``out`` and return its manifest.

    ``parity_images`` are real images used, with a few real strings, to check the
    whole inference path (our preprocessing and tokenizer + ONNX) against open_clip.
    ``exporter`` picks the torch ONNX exporter: "dynamo", "torchscript" or "auto"
    (dynamo, falling back to TorchScript). ``overwrite`` allows replacing an existing
    bundle at ``out``; any other non-empty directory is refused.
    """
    check_exporter(exporter)
    started = time.perf_counter()
    out = Path(out)
    # Checked before the model is built, so a refused directory costs no download.
    check_out_dir(out, overwrite)
    spec = openclip_spec(arch, pretrained, checkpoint)
    return export_spec(
        spec,
        out,
        parity_images,
        opset=opset,
        overwrite=overwrite,
        exporter=exporter,
        started=started,
    )
