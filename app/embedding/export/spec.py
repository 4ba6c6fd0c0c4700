"""What an export works from: the ``ExportSpec`` of a torch dual encoder, and the export error.

Both sources of a bundle build one: ``openclip_models`` for open_clip architectures, and
``app.embedding.training`` for models trained here. Nothing in this module needs torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

EXPORTERS = ("auto", "dynamo", "torchscript")

# The spec fields a bundle's manifest records as they are (the rest of the manifest is measured
# during export): listed once so the writer does not restate them field by field.
MANIFEST_FIELDS = (
    "arch",
    "pretrained",
    "weights_source",
    "image_size",
    "mean",
    "std",
    "resize",
    "interpolation",
    "context_length",
)


def has_instance_head(model: Any) -> bool:
    """Whether ``model`` has an instance head (``encode_image_with_instance``): models trained
    here with ``instance_dim`` > 0 do; open_clip architectures do not."""
    return getattr(model, "instance", None) is not None


class ExportError(Exception):
    """Export failed; the message explains why and what to do instead."""


def check_exporter(exporter: str) -> None:
    """Refuse an exporter name that is not one of ``EXPORTERS``."""
    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; use one of {', '.join(EXPORTERS)}")


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """A built torch dual encoder plus everything inference needs to reproduce it.

    ``model`` has ``encode_image(pixels)`` and ``encode_text(ids)`` (un-normalised outputs).
    ``write_tokenizer(path)`` writes ``tokenizer.json`` and returns the manifest entry;
    ``reference_ids(texts)`` gives the id rows the torch text tower was trained with, so the
    parity check also proves our tokenizer reproduces them.
    """

    model: Any
    arch: str
    pretrained: str
    weights_source: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str
    interpolation: str
    context_length: int
    vocab_size: int
    start_end_ids: tuple[int, int]
    write_tokenizer: Callable[[Path], dict[str, Any]]
    reference_ids: Callable[[Sequence[str]], np.ndarray]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def manifest_fields(self) -> dict[str, Any]:
        """The fields of ``MANIFEST_FIELDS``, by name, for ``Manifest(...)``."""
        return {name: getattr(self, name) for name in MANIFEST_FIELDS}
