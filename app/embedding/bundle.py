"""Model bundles: a directory holding the ONNX towers, the tokenizer and a manifest.

The manifest is the contract between export (torch/open_clip, offline tooling) and
inference (onnxruntime only). Everything inference needs to reproduce the model's
preprocessing lives here, so a bundle can be copied to a machine without torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.files import write_text_atomic

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
IMAGE_MODEL_FILE = "image.onnx"
TEXT_MODEL_FILE = "text.onnx"
TOKENIZER_FILE = "tokenizer.json"
# Files every bundle must have; others (e.g. external weight data) may be listed too.
REQUIRED_FILES = (IMAGE_MODEL_FILE, TEXT_MODEL_FILE, TOKENIZER_FILE)

# Graph signature shared by export and runtime.
IMAGE_INPUT = "pixel_values"
TEXT_INPUT = "input_ids"
EMBEDDINGS_OUTPUT = "embeddings"
# The image graph's optional second output: the instance (identity) embedding, computed from the
# same backbone pass; present exactly when the manifest's ``instance_dim`` is above 0.
INSTANCE_OUTPUT = "instance"


class BundleError(Exception):
    """A model bundle is missing, incomplete or corrupt; the message names the file."""


Triple = tuple[float, float, float]


@dataclass(frozen=True)
class Manifest:
    format_version: int
    model_id: str
    arch: str
    pretrained: str
    embed_dim: int
    image_size: int
    mean: Triple
    std: Triple
    resize: str
    interpolation: str
    context_length: int
    tokenizer: dict[str, Any]
    weights_source: str
    files: dict[str, str]
    parity: dict[str, float]
    created_at: str
    extra: dict[str, Any] = field(default_factory=dict)
    # 0: no instance output. A default, so older manifests read as "none", and older readers
    # (which ignore unknown fields and fetch outputs by name) still load newer bundles.
    instance_dim: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> Manifest:
        if not isinstance(data, dict):
            raise BundleError(f"{source}: expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - data.keys())
        if missing:
            raise BundleError(f"{source}: missing field(s) {', '.join(missing)}")
        unknown = sorted(data.keys() - names)
        if unknown:
            # Tolerated so that a newer writer can add fields without breaking old readers;
            # anything that changes meaning must bump FORMAT_VERSION instead.
            log.debug("%s: ignoring unknown field(s) %s", source, unknown)
        kwargs = {k: v for k, v in data.items() if k in names}
        try:
            kwargs["mean"] = _triple(kwargs["mean"])
            kwargs["std"] = _triple(kwargs["std"])
            for key in ("format_version", "embed_dim", "image_size", "context_length"):
                kwargs[key] = int(kwargs[key])
            kwargs["instance_dim"] = int(kwargs.get("instance_dim", 0))
            if kwargs["instance_dim"] < 0:
                raise ValueError("'instance_dim' must not be negative")
            for key in ("tokenizer", "files", "parity", "extra"):
                if key in kwargs and not isinstance(kwargs[key], dict):
                    raise ValueError(f"'{key}' must be an object")
            kwargs["parity"] = {str(k): float(v) for k, v in kwargs["parity"].items()}
            kwargs["files"] = {str(k): str(v) for k, v in kwargs["files"].items()}
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{source}: invalid field value: {exc}") from exc
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str, source: str = "manifest") -> Manifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BundleError(f"{source} is not valid JSON: {exc}") from exc
        return cls.from_dict(data, source)


def _triple(value: Any) -> Triple:
    items = [float(v) for v in value]
    if len(items) != 3:
        raise ValueError(f"expected 3 numbers, got {len(items)}")
    return (items[0], items[1], items[2])


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file_name(name: str, manifest_path: Path) -> None:
    # Manifest entries are plain names inside the bundle; refuse paths so a crafted
    # manifest cannot make us read (or claim to verify) files outside the bundle.
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise BundleError(f"{manifest_path}: invalid file name {name!r} in 'files'")


def load_manifest(bundle_dir: Path, verify: bool = True) -> Manifest:
    """Read and check ``bundle_dir/manifest.json``.

    With ``verify`` every listed file is hashed and compared with the manifest, which
    catches truncated copies and hand-edited models before they produce silent garbage.
    """
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleError(f"model bundle directory not found: {bundle_dir}")
    manifest_path = bundle_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(
            f"{manifest_path} not found: {bundle_dir} is not a model bundle "
            "(or its export did not finish)"
        )
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read {manifest_path}: {exc}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest_path} is not valid JSON: {exc}") from exc
    # Check the version before the fields: a future format may have different ones.
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{manifest_path}: bundle format_version {version!r} is not supported "
            f"(this snapshop reads format {FORMAT_VERSION}); re-export the bundle"
        )
    manifest = Manifest.from_dict(raw, str(manifest_path))

    for name in manifest.files:
        _check_file_name(name, manifest_path)
    for name in REQUIRED_FILES:
        if name not in manifest.files:
            raise BundleError(f"{manifest_path}: required file {name} is not listed in 'files'")
    for name, expected in sorted(manifest.files.items()):
        path = bundle_dir / name
        if not path.is_file():
            raise BundleError(f"bundle file missing: {path} (listed in {manifest_path})")
        if verify:
            actual = sha256_file(path)
            if actual != expected:
                raise BundleError(
                    f"bundle file {path} does not match its manifest checksum "
                    f"(sha256 {actual[:12]}…, expected {expected[:12]}…): "
                    "the file was modified or copied incompletely; re-copy or re-export the bundle"
                )
    return manifest


def write_bundle_manifest(bundle_dir: Path, manifest: Manifest) -> Manifest:
    """Hash every file in ``bundle_dir`` into ``manifest.files`` and write manifest.json.

    Called last during export, and the write is atomic, so a directory with a
    manifest.json is always a complete bundle. Returns the manifest as written.
    """
    bundle_dir = Path(bundle_dir)
    names = sorted(p.name for p in bundle_dir.iterdir() if p.is_file() and p.name != MANIFEST_FILE)
    missing = [n for n in REQUIRED_FILES if n not in names]
    if missing:
        raise BundleError(f"cannot write manifest: {bundle_dir} lacks {', '.join(missing)}")
    files = {name: sha256_file(bundle_dir / name) for name in names}
    final = dataclasses.replace(manifest, files=files, format_version=FORMAT_VERSION)
    write_text_atomic(bundle_dir / MANIFEST_FILE, final.to_json())
    return final
