"""open_clip models: import torch/open_clip on demand, resolve weights, build an ``ExportSpec``.

Weights come from a pretrained tag (downloaded or from open_clip's cache), a local checkpoint,
or a seeded random initialisation ("none", for tests and demos).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.embedding.bundle import sha256_file
from app.embedding.export.spec import ExportError, ExportSpec
from app.embedding.tokenizer import build_clip_tokenizer_json

log = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"
CLIP_START_END_IDS = (49406, 49407)  # <start_of_text>, <end_of_text> in CLIP's vocabulary

_configs_registered = False


@dataclasses.dataclass(frozen=True)
class _Weights:
    path: str | None  # checkpoint file for open_clip, None = random init
    label: str  # Manifest.pretrained
    source: str  # Manifest.weights_source
    tag: str | None
    preprocess: dict[str, Any]  # preprocessing implied by the pretrained tag
    quick_gelu: bool


def import_open_clip() -> tuple[Any, Any]:
    """``(open_clip, torch)``, or ``ExportError`` saying they are needed only for export."""
    try:
        import open_clip  # type: ignore[import-untyped]
        import torch
    except ImportError as exc:
        raise ExportError(
            f"model export needs torch and open_clip installed ({exc}); inference does not"
        ) from exc
    global _configs_registered
    if not _configs_registered:
        # Makes the bundled tiny test architecture ("snapshop-tiny") known to open_clip.
        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _configs_registered = True
    return open_clip, torch


def _download_weights(open_clip: Any, cfg: dict[str, Any]) -> str:
    """Fetch a pretrained tag's checkpoint, or reuse open_clip's download cache."""
    return str(open_clip.download_pretrained(cfg))


def _download_help(arch: str, tag: str, reason: str) -> str:
    return (
        f"Could not fetch the weights for {arch} pretrained '{tag}': {reason}. "
        "This machine may be offline or the model hub unreachable, and the weights are not "
        "in the local cache. Either download the checkpoint on a machine with internet access "
        "(open_clip keeps it under ~/.cache/huggingface or ~/.cache/clip) and pass the file "
        f"with --checkpoint FILE (keep --pretrained {tag} so its preprocessing settings are "
        "used), or export an untrained model for tests and demos with --pretrained none."
    )


def _resolve_weights(
    open_clip: Any, arch: str, pretrained: str, checkpoint: Path | None
) -> _Weights:
    tag = None if pretrained.lower() in ("", "none") else pretrained
    if tag is not None and checkpoint is None and Path(tag).is_file():
        # open_clip also accepts a file for `pretrained`; treat it as --checkpoint.
        checkpoint, tag = Path(tag), None
    tag_cfg: dict[str, Any] = {}
    if tag is not None:
        tag_cfg = dict(open_clip.get_pretrained_cfg(arch, tag))
        if not tag_cfg:
            tags = open_clip.list_pretrained_tags_by_model(arch)
            known = f"known tags: {', '.join(tags)}" if tags else "it has no pretrained tags"
            raise ExportError(
                f"'{tag}' is not a pretrained tag open_clip knows for {arch} ({known}). "
                "Use a known tag, --pretrained none for random weights, or --checkpoint FILE."
            )
    preprocess: dict[str, Any] = {
        k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg
    }
    quick_gelu = bool(tag_cfg.get("quick_gelu", False))

    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise ExportError(f"checkpoint file not found: {checkpoint}")
        source = f"local checkpoint {checkpoint.resolve()} (sha256 {sha256_file(checkpoint)[:12]})"
        if tag:
            source += f", preprocessing of open_clip tag '{tag}'"
        return _Weights(
            str(checkpoint), f"checkpoint:{checkpoint.name}", source, tag, preprocess, quick_gelu
        )
    if tag is None:
        return _Weights(
            None,
            "none",
            "random initialisation (torch seed 0): not a trained model, for tests and demos only",
            None,
            {},
            False,
        )
    log.info(
        "fetching weights for %s '%s' (if offline, this fails only after the hub client's retries)",
        arch,
        tag,
    )
    try:
        path = _download_weights(open_clip, tag_cfg)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if len(reason) > 300:
            reason = reason[:300] + "…"
        raise ExportError(_download_help(arch, tag, reason)) from exc
    if not path or not Path(path).is_file():
        raise ExportError(_download_help(arch, tag, "no checkpoint file was produced"))
    where = tag_cfg.get("hf_hub") or tag_cfg.get("url") or path
    return _Weights(
        path, tag, f"open_clip pretrained '{tag}' ({where})", tag, preprocess, quick_gelu
    )


def openclip_spec(arch: str, pretrained: str, checkpoint: Path | None = None) -> ExportSpec:
    """Build ``arch`` with its weights on the CPU and describe it for export.

    Refuses what inference cannot reproduce: non-square inputs, resize modes other than
    "shortest", interpolations other than bicubic/bilinear, and non-CLIP vocabularies.
    """
    open_clip, torch = import_open_clip()
    if arch not in open_clip.list_models():
        raise ExportError(
            f"unknown open_clip architecture '{arch}'; see open_clip.list_models() "
            "(e.g. ViT-B-32, or snapshop-tiny for tests)"
        )
    weights = _resolve_weights(open_clip, arch, pretrained, checkpoint)

    # Seeded so that "--pretrained none" gives the same random model every time.
    torch.manual_seed(0)
    try:
        model = open_clip.create_model(
            arch,
            pretrained=weights.path,
            force_preprocess_cfg=weights.preprocess or None,
            force_quick_gelu=weights.quick_gelu,
            device="cpu",
        )
    except Exception as exc:
        raise ExportError(f"could not build {arch} from {weights.source}: {exc}") from exc
    model.eval()

    cfg = dict(model.visual.preprocess_cfg)
    size = cfg.get("size", model.visual.image_size)
    sizes = (size, size) if isinstance(size, int) else tuple(size)
    if sizes[0] != sizes[1]:
        raise ExportError(
            f"{arch} has a non-square input {sizes}; only square inputs are supported"
        )
    resize = str(cfg.get("resize_mode", "shortest"))
    interpolation = str(cfg.get("interpolation", "bicubic"))
    if resize != "shortest" or interpolation not in ("bicubic", "bilinear"):
        raise ExportError(
            f"{arch}/{weights.label} uses resize_mode={resize!r}, interpolation={interpolation!r}; "
            "only 'shortest' with bicubic/bilinear is implemented at inference"
        )

    def reference_ids(texts: Sequence[str]) -> np.ndarray:
        ids: np.ndarray = open_clip.get_tokenizer(arch)(list(texts)).numpy().astype(np.int64)
        return ids

    def write_tokenizer(path: Path) -> dict[str, Any]:
        cfg = build_clip_tokenizer_json(path)
        if cfg["vocab_size"] != int(model.vocab_size):
            raise ExportError(
                f"{arch} has a text vocabulary of {model.vocab_size}, not the CLIP BPE "
                f"vocabulary ({cfg['vocab_size']}); its tokenizer is not supported"
            )
        return cfg

    return ExportSpec(
        model=model,
        arch=arch,
        pretrained=weights.label,
        weights_source=weights.source,
        image_size=int(sizes[0]),
        mean=_triple(cfg["mean"]),
        std=_triple(cfg["std"]),
        resize=resize,
        interpolation=interpolation,
        context_length=int(model.context_length),
        vocab_size=int(model.vocab_size),
        start_end_ids=CLIP_START_END_IDS,
        write_tokenizer=write_tokenizer,
        reference_ids=reference_ids,
        extra={"quick_gelu": weights.quick_gelu, "pretrained_tag": weights.tag},
    )


def _triple(values: Any) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return (a, b, c)
