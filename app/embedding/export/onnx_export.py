"""ONNX export of the two towers: each wrapped as a one-input module, traced with a dynamic batch.

"auto" tries the torch.export-based exporter (the supported one in current torch) and falls back
to the TorchScript exporter, which is deprecated but ~10x faster on small models and still
handles these plain transformer graphs.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.embedding.bundle import (
    EMBEDDINGS_OUTPUT,
    IMAGE_INPUT,
    IMAGE_MODEL_FILE,
    INSTANCE_OUTPUT,
    TEXT_INPUT,
    TEXT_MODEL_FILE,
)
from app.embedding.export.parity import random_token_ids
from app.embedding.export.spec import ExportError, ExportSpec, has_instance_head

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Trace with a batch that is neither 1 nor any parity batch size, so a graph that
# silently baked in the traced batch size fails the parity check.
TRACE_BATCH = 2
# Above this many bytes of weights a single-file ONNX would hit protobuf's 2 GiB limit.
_EXTERNAL_DATA_BYTES = 1_800_000_000
TOWERS = (("image", IMAGE_MODEL_FILE, IMAGE_INPUT), ("text", TEXT_MODEL_FILE, TEXT_INPUT))


def _image_forward(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = model.encode_image(pixel_values)
    return out


def _image_instance_forward(
    model: Any, pixel_values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    out: tuple[torch.Tensor, torch.Tensor] = model.encode_image_with_instance(pixel_values)
    return out


def _text_forward(model: Any, input_ids: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = model.encode_text(input_ids)
    return out


def _tower(torch: Any, model: Any, kind: str) -> Any:
    """Wrap one tower as a single-input module (un-normalised embeddings out)."""

    class Tower(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> Any:
            # Module-level functions, looked up at trace time, so a test can substitute
            # a deliberately broken tower and watch the parity check catch it.
            if kind == "image" and has_instance_head(self.model):
                # One graph, two outputs: the instance vector costs no second backbone pass.
                return _image_instance_forward(self.model, x)
            if kind == "image":
                return _image_forward(self.model, x)
            return _text_forward(self.model, x)

    return Tower().eval()


def export_onnx(
    torch: Any,
    module: Any,
    example: torch.Tensor,
    path: Path,
    input_name: str,
    opset: int | None,
    external_data: bool,
    exporter: str,
    output_names: tuple[str, ...] = (EMBEDDINGS_OUTPUT,),
    max_tokens: int | None = None,
) -> str:
    """Write ``module`` to ``path`` with a dynamic batch axis; returns the exporter used.

    ``max_tokens`` also makes axis 1 (a text tower's tokens) dynamic, up to that length, with
    the torch.export-based exporter; the TorchScript fallback keeps the traced length, since
    its traces can bake a length in without failing.
    """
    dims: dict[int, Any] = {0: torch.export.Dim("batch")}
    if max_tokens is not None:
        dims[1] = torch.export.Dim("tokens", min=2, max=max_tokens)

    def run(**options: Any) -> None:
        # The bundle's graph signature; ``options`` pick and configure the exporter.
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=list(output_names),
            **options,
        )

    errors: list[str] = []
    if exporter in ("auto", "dynamo"):
        try:
            run(
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=(dims,),
                external_data=external_data,
                verbose=False,
            )
            return "dynamo"
        except Exception as exc:  # exporter failures come in many types
            errors.append(f"dynamo exporter: {exc}")
            if exporter == "dynamo":
                raise ExportError(f"ONNX export of {path.name} failed: {exc}") from exc
            log.warning(
                "dynamo ONNX export of %s failed (%s); trying the TorchScript exporter",
                path.name,
                exc,
            )
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()
    try:
        # Grad mode keeps nn.MultiheadAttention off its fused fast path, which the
        # TorchScript exporter cannot translate. Its deprecation and tracer warnings are
        # silenced: whether the trace generalises is what the parity check (run at batch
        # sizes other than the traced one) establishes.
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(
                opset_version=opset or 17,
                dynamo=False,
                dynamic_axes={
                    input_name: {0: "batch"},
                    **{name: {0: "batch"} for name in output_names},
                },
            )
        return "torchscript"
    except Exception as exc:
        errors.append(f"TorchScript exporter: {exc}")
    raise ExportError(f"ONNX export of {path.name} failed: " + "; ".join(errors))


def export_towers(
    torch: Any, spec: ExportSpec, bundle: Path, opset: int | None, exporter: str
) -> dict[str, str]:
    """Write both towers of ``spec.model`` into ``bundle``; returns the exporter used per tower."""
    model = spec.model
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    external = param_bytes > _EXTERNAL_DATA_BYTES
    examples = {
        "image": torch.randn(TRACE_BATCH, 3, spec.image_size, spec.image_size),
        "text": torch.from_numpy(
            random_token_ids(
                np.random.default_rng(1),
                TRACE_BATCH,
                spec.context_length,
                spec.vocab_size,
                *spec.start_end_ids,
            )
        ),
    }
    exporters = {}
    outputs = {
        "image": (EMBEDDINGS_OUTPUT, INSTANCE_OUTPUT)
        if has_instance_head(model)
        else (EMBEDDINGS_OUTPUT,),
        "text": (EMBEDDINGS_OUTPUT,),
    }
    for kind, file_name, input_name in TOWERS:
        t0 = time.perf_counter()
        args = (torch, _tower(torch, model, kind), examples[kind], bundle / file_name, input_name)
        if kind == "text":
            # A dynamic token axis lets a short query run at its own length (the parity
            # check compares trimmed ids with torch at full length); a tower that cannot be
            # traced that way keeps the fixed context length.
            try:
                exporters[kind] = export_onnx(
                    *args, opset, external, exporter, outputs[kind], spec.context_length
                )
            except ExportError as exc:
                log.warning("text tower with a dynamic token axis failed (%s); fixed length", exc)
                exporters[kind] = export_onnx(*args, opset, external, exporter, outputs[kind])
        else:
            exporters[kind] = export_onnx(*args, opset, external, exporter, outputs[kind])
        log.info("exported %s tower in %.1fs (%s)", kind, time.perf_counter() - t0, exporters[kind])
    return exporters


def opset_of(path: Path) -> int | None:
    """The default-domain opset an ONNX file was written with."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None
