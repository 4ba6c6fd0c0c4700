"""Export an open_clip model to a model bundle (ONNX towers + tokenizer + manifest).

This is the only module of the package that needs torch and open_clip; both are
imported inside functions so that importing ``app.embedding`` stays torch-free.

The bundle is assembled in a temporary directory next to ``out`` and only moved into
place after the ONNX graphs have been checked against torch, so ``out`` either holds a
complete, verified bundle or nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.embedding.bundle import (
    EMBEDDINGS_OUTPUT,
    FORMAT_VERSION,
    IMAGE_INPUT,
    IMAGE_MODEL_FILE,
    MANIFEST_FILE,
    TEXT_INPUT,
    TEXT_MODEL_FILE,
    TOKENIZER_FILE,
    Manifest,
    sha256_file,
    write_bundle_manifest,
)
from app.embedding.preprocess import ImageError, load_image, preprocess_images
from app.embedding.tokenizer import TextTokenizer, build_clip_tokenizer_json, load_tokenizer

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
PARITY_MIN_COSINE = 0.999
# Trace with a batch that is neither 1 nor any parity batch size, so a graph that
# silently baked in the traced batch size fails the parity check.
TRACE_BATCH = 2
RANDOM_PARITY_BATCHES = (4, 1)
EXPORTERS = ("auto", "dynamo", "torchscript")
PARITY_TEXTS = (
    "navy blue tshirt for men",
    "Women's red floral summer dress",
    "leather wallet, brown — 2 pack!",
    "Kids' running shoes (size 34)",
    "",
)
# Above this many bytes of weights a single-file ONNX would hit protobuf's 2 GiB limit.
_EXTERNAL_DATA_BYTES = 1_800_000_000

_configs_registered = False


class ExportError(Exception):
    """Export failed; the message explains why and what to do instead."""


@dataclasses.dataclass(frozen=True)
class _Weights:
    path: str | None  # checkpoint file for open_clip, None = random init
    label: str  # Manifest.pretrained
    source: str  # Manifest.weights_source
    tag: str | None
    preprocess: dict[str, Any]  # preprocessing implied by the pretrained tag
    quick_gelu: bool


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


def _import_open_clip() -> tuple[Any, Any]:
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


def _image_forward(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = model.encode_image(pixel_values)
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

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # Module-level functions, looked up at trace time, so a test can substitute
            # a deliberately broken tower and watch the parity check catch it.
            if kind == "image":
                return _image_forward(self.model, x)
            return _text_forward(self.model, x)

    return Tower().eval()


def _export_onnx(
    torch: Any,
    module: Any,
    example: torch.Tensor,
    path: Path,
    input_name: str,
    opset: int | None,
    external_data: bool,
    exporter: str,
) -> str:
    """Write ``module`` to ``path`` with a dynamic batch axis; returns the exporter used.

    "auto" tries the torch.export-based exporter (the supported one in current torch)
    and falls back to the TorchScript exporter, which is deprecated but ~10x faster on
    small models and still handles these plain transformer graphs.
    """
    errors: list[str] = []
    if exporter in ("auto", "dynamo"):
        try:
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=[input_name],
                output_names=[EMBEDDINGS_OUTPUT],
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=({0: batch},),
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
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=[input_name],
                output_names=[EMBEDDINGS_OUTPUT],
                opset_version=opset or 17,
                dynamo=False,
                dynamic_axes={input_name: {0: "batch"}, EMBEDDINGS_OUTPUT: {0: "batch"}},
            )
        return "torchscript"
    except Exception as exc:
        errors.append(f"TorchScript exporter: {exc}")
    raise ExportError(f"ONNX export of {path.name} failed: " + "; ".join(errors))


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray((a * b).sum(axis=1) / np.maximum(denom, 1e-30))


def _random_token_ids(
    rng: np.random.Generator, batch: int, context_length: int, vocab_size: int, sot: int, eot: int
) -> np.ndarray:
    ids = np.zeros((batch, context_length), dtype=np.int64)
    for row in range(batch):
        # Row 0 fills the whole context (truncation case); others have random lengths.
        n = context_length - 2 if row == 0 else int(rng.integers(0, context_length - 1))
        body = rng.integers(1, vocab_size - 2, size=n)
        ids[row, : n + 2] = [sot, *body.tolist(), eot]
    return ids


class _Parity:
    """Compares ONNX Runtime (CPU) against torch and collects the numbers."""

    def __init__(self, torch: Any, model: Any, bundle: Path) -> None:
        import onnxruntime as ort

        self.torch = torch
        self.model = model
        self.sessions = {
            name: ort.InferenceSession(str(bundle / name), providers=["CPUExecutionProvider"])
            for name in (IMAGE_MODEL_FILE, TEXT_MODEL_FILE)
        }
        self.numbers: dict[str, float] = {}

    def compare(self, key: str, kind: str, ref_input: np.ndarray, onnx_input: np.ndarray) -> None:
        torch = self.torch
        with torch.no_grad():
            tensor = torch.from_numpy(ref_input)
            ref = (
                self.model.encode_image(tensor)
                if kind == "image"
                else self.model.encode_text(tensor)
            ).numpy()
        name, input_name = (
            (IMAGE_MODEL_FILE, IMAGE_INPUT) if kind == "image" else (TEXT_MODEL_FILE, TEXT_INPUT)
        )
        (got,) = self.sessions[name].run([EMBEDDINGS_OUTPUT], {input_name: onnx_input})
        if got.shape != ref.shape:
            raise ExportError(
                f"parity check failed: {name} returned shape {got.shape} for a batch of "
                f"{onnx_input.shape[0]}, torch returned {ref.shape} (dynamic batch axis broken?)"
            )
        cos = float(_cosine_rows(ref, got).min())
        diff = float(np.abs(ref - got).max())
        min_key = f"{key}_min_cos"
        self.numbers[min_key] = min(cos, self.numbers.get(min_key, 1.0))
        diff_key = f"{kind}_max_abs_diff"
        self.numbers[diff_key] = max(diff, self.numbers.get(diff_key, 0.0))

    def failures(self) -> list[str]:
        return [
            f"{k}={v:.6f}"
            for k, v in sorted(self.numbers.items())
            if k.endswith("_min_cos") and not v >= PARITY_MIN_COSINE
        ]


def _check_out_dir(out: Path, overwrite: bool) -> None:
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
    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; use one of {', '.join(EXPORTERS)}")
    started = time.perf_counter()
    out = Path(out)
    _check_out_dir(out, overwrite)
    open_clip, torch = _import_open_clip()
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
    image_size = int(sizes[0])
    resize = str(cfg.get("resize_mode", "shortest"))
    interpolation = str(cfg.get("interpolation", "bicubic"))
    if resize != "shortest" or interpolation not in ("bicubic", "bilinear"):
        raise ExportError(
            f"{arch}/{weights.label} uses resize_mode={resize!r}, interpolation={interpolation!r}; "
            "only 'shortest' with bicubic/bilinear is implemented at inference"
        )
    context_length = int(model.context_length)

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

    spec = ExportSpec(
        model=model,
        arch=arch,
        pretrained=weights.label,
        weights_source=weights.source,
        image_size=image_size,
        mean=_triple(cfg["mean"]),
        std=_triple(cfg["std"]),
        resize=resize,
        interpolation=interpolation,
        context_length=context_length,
        vocab_size=int(model.vocab_size),
        start_end_ids=(49406, 49407),  # <start_of_text>, <end_of_text> in CLIP's vocabulary
        write_tokenizer=write_tokenizer,
        reference_ids=reference_ids,
        extra={"quick_gelu": weights.quick_gelu, "pretrained_tag": weights.tag},
    )
    return export_spec(
        spec,
        out,
        parity_images,
        opset=opset,
        overwrite=overwrite,
        exporter=exporter,
        started=started,
    )


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
    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; use one of {', '.join(EXPORTERS)}")
    started = time.perf_counter() if started is None else started
    out = Path(out)
    _check_out_dir(out, overwrite)
    open_clip, torch = _import_open_clip()
    model = spec.model
    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        tokenizer_cfg = spec.write_tokenizer(tmp / TOKENIZER_FILE)
        tokenizer = load_tokenizer(tmp, tokenizer_cfg, spec.context_length)

        param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        external = param_bytes > _EXTERNAL_DATA_BYTES
        exporters = {}
        examples = {
            "image": torch.randn(TRACE_BATCH, 3, spec.image_size, spec.image_size),
            "text": torch.from_numpy(
                _random_token_ids(
                    np.random.default_rng(1),
                    TRACE_BATCH,
                    spec.context_length,
                    spec.vocab_size,
                    *spec.start_end_ids,
                )
            ),
        }
        for kind, file_name, input_name in (
            ("image", IMAGE_MODEL_FILE, IMAGE_INPUT),
            ("text", TEXT_MODEL_FILE, TEXT_INPUT),
        ):
            t0 = time.perf_counter()
            exporters[kind] = _export_onnx(
                torch,
                _tower(torch, model, kind),
                examples[kind],
                tmp / file_name,
                input_name,
                opset,
                external,
                exporter,
            )
            log.info(
                "exported %s tower in %.1fs (%s)", kind, time.perf_counter() - t0, exporters[kind]
            )

        draft = Manifest(
            format_version=FORMAT_VERSION,
            model_id="",
            arch=spec.arch,
            pretrained=spec.pretrained,
            embed_dim=0,
            image_size=spec.image_size,
            mean=spec.mean,
            std=spec.std,
            resize=spec.resize,
            interpolation=spec.interpolation,
            context_length=spec.context_length,
            tokenizer=tokenizer_cfg,
            weights_source=spec.weights_source,
            files={},
            parity={},
            created_at="",
        )
        parity, embed_dim = _check_parity(
            open_clip, torch, spec, tmp, draft, tokenizer, parity_images
        )
        image_sha = sha256_file(tmp / IMAGE_MODEL_FILE)
        manifest = dataclasses.replace(
            draft,
            model_id=f"{spec.arch}:{spec.pretrained}:{image_sha[:12]}",
            embed_dim=embed_dim,
            parity=parity,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            extra={
                **spec.extra,
                "exporter": exporters,
                "opset": _opset_of(tmp / IMAGE_MODEL_FILE),
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


def _check_parity(
    open_clip: Any,
    torch: Any,
    spec: ExportSpec,
    bundle: Path,
    draft: Manifest,
    tokenizer: TextTokenizer,
    parity_images: Sequence[Path],
) -> tuple[dict[str, float], int]:
    """Run torch and ONNX Runtime side by side; raise ExportError below the threshold."""
    model = spec.model
    parity = _Parity(torch, model, bundle)
    rng = np.random.default_rng(0)
    size = draft.image_size
    for batch in RANDOM_PARITY_BATCHES:
        pixels = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
        parity.compare("image_random", "image", pixels, pixels)
        ids = _random_token_ids(
            rng, batch, draft.context_length, spec.vocab_size, *spec.start_end_ids
        )
        parity.compare("text_random", "text", ids, ids)

    # Real strings: our tokenizer must give the training tokenizer's ids exactly.
    ref_ids = spec.reference_ids(PARITY_TEXTS)
    our_ids = tokenizer.encode_batch(PARITY_TEXTS)
    if ref_ids.shape != our_ids.shape or not np.array_equal(ref_ids, our_ids):
        bad = [
            t
            for t, a, b in zip(PARITY_TEXTS, ref_ids, our_ids, strict=False)
            if not np.array_equal(a, b)
        ]
        raise ExportError(f"tokenizer mismatch with {spec.arch}'s own tokenizer on {bad!r}")
    parity.compare("text_real", "text", ref_ids, our_ids)

    if parity_images:
        try:
            images = [load_image(Path(p)) for p in parity_images]
        except ImageError as exc:
            raise ExportError(f"parity image unusable: {exc}") from exc
        # Reference pixels from open_clip's own transform, ours from preprocess.py:
        # this checks preprocessing and model together, as search will run them.
        transform = open_clip.image_transform(
            size,
            is_train=False,
            mean=draft.mean,
            std=draft.std,
            resize_mode=draft.resize,
            interpolation=draft.interpolation,
        )
        ref_pixels = torch.stack([transform(img) for img in images]).numpy()
        our_pixels = preprocess_images(images, draft)
        parity.numbers["preprocess_max_abs_diff"] = float(np.abs(ref_pixels - our_pixels).max())
        parity.compare("image_real", "image", ref_pixels, our_pixels)
    else:
        log.warning("no parity images given: real-image parity not checked")

    failures = parity.failures()
    if failures:
        raise ExportError(
            f"parity check failed for {spec.arch}: {', '.join(failures)} (need cosine >= "
            f"{PARITY_MIN_COSINE} per row between ONNX Runtime and torch); the ONNX graphs do "
            "not reproduce the model, so no bundle was written"
        )
    with torch.no_grad():
        embed_dim = int(model.encode_text(torch.from_numpy(our_ids[:1])).shape[-1])
    log.info("parity ok: %s", parity.numbers)
    return parity.numbers, embed_dim


def _triple(values: Any) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return (a, b, c)


def _opset_of(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for dist in ("torch", "open-clip-torch", "onnx", "onnxruntime-gpu", "onnxruntime"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found
