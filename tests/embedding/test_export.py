"""Bundle export (open_clip -> ONNX) and bundle validation."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from app.embedding import BundleError, Encoder, Manifest, load_manifest, write_bundle_manifest
from app.embedding.bundle import FORMAT_VERSION, REQUIRED_FILES
from app.embedding.export import ExportError, export_bundle, onnx_export, openclip_models


@pytest.fixture()
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A private copy that a test may damage."""
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def test_manifest_describes_the_export(tiny_bundle: Path) -> None:
    m = load_manifest(tiny_bundle, verify=True)
    assert m.format_version == FORMAT_VERSION
    assert (m.arch, m.pretrained, m.embed_dim, m.image_size) == ("snapshop-tiny", "none", 64, 64)
    assert (m.resize, m.interpolation, m.context_length) == ("shortest", "bicubic", 77)
    assert m.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert m.std == pytest.approx((0.26862954, 0.26130258, 0.27577711))
    assert re.fullmatch(r"snapshop-tiny:none:[0-9a-f]{12}", m.model_id)
    assert m.model_id.endswith(m.files["image.onnx"][:12])
    assert set(m.files) == set(REQUIRED_FILES)  # no stray external-data files
    assert m.tokenizer["sot_id"] == 49406 and m.tokenizer["eot_id"] == 49407
    assert "random" in m.weights_source
    assert datetime.fromisoformat(m.created_at).tzinfo is not None
    cosines = {k: v for k, v in m.parity.items() if k.endswith("_min_cos")}
    assert set(cosines) == {
        "image_random_min_cos",
        "text_random_min_cos",
        "image_real_min_cos",
        "text_real_min_cos",
    }
    assert min(cosines.values()) >= 0.999
    assert m.parity["preprocess_max_abs_diff"] <= 1e-6
    assert m.extra["parity_images"] and m.extra["opset"]
    # The default path is the torch.export-based exporter (TorchScript is the fallback).
    assert m.extra["exporter"] == {"image": "dynamo", "text": "dynamo"}
    # Nothing but the bundle files: the temporary build directory is gone.
    assert sorted(p.name for p in tiny_bundle.parent.iterdir()) == ["bundle"]


def test_manifest_json_round_trip(tiny_bundle: Path) -> None:
    m = load_manifest(tiny_bundle)
    again = Manifest.from_json(m.to_json())
    assert again == m
    assert isinstance(again.mean, tuple)


def test_tampered_file_is_rejected(bundle_copy: Path) -> None:
    path = bundle_copy / "text.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"text\.onnx"):
        load_manifest(bundle_copy)
    with pytest.raises(BundleError, match=r"text\.onnx"):
        Encoder(bundle_copy, device="cpu")
    load_manifest(bundle_copy, verify=False)  # hashing is what caught it


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json"),
        (lambda d: (d / "manifest.json").unlink(), "manifest.json"),
        (lambda d: (d / "manifest.json").write_text("{not json"), "not valid JSON"),
        (lambda d: _edit_manifest(d, format_version=99), "format_version 99"),
        (lambda d: _edit_manifest(d, files={"../x": "0"}), "invalid file name"),
        (lambda d: _edit_manifest(d, embed_dim="big"), "invalid field value"),
        (lambda d: _edit_manifest(d, arch=None, drop="arch"), "missing field"),
    ],
)
def test_broken_bundles_raise_bundle_error(bundle_copy: Path, damage: object, message: str) -> None:
    damage(bundle_copy)  # type: ignore[operator]
    with pytest.raises(BundleError, match=re.escape(message)):
        load_manifest(bundle_copy)


def _edit_manifest(bundle: Path, drop: str | None = None, **changes: object) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    if drop:
        del data[drop]
    path.write_text(json.dumps(data))


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not found"):
        load_manifest(tmp_path / "nope")


def test_write_bundle_manifest_hashes_every_file(bundle_copy: Path) -> None:
    (bundle_copy / "notes.txt").write_text("extra file")
    old = load_manifest(bundle_copy)
    new = write_bundle_manifest(bundle_copy, dataclasses.replace(old, files={}))
    assert set(new.files) == {*REQUIRED_FILES, "notes.txt"}
    assert load_manifest(bundle_copy) == new
    (bundle_copy / "image.onnx").unlink()
    with pytest.raises(BundleError, match=r"image\.onnx"):
        write_bundle_manifest(bundle_copy, new)


def test_unknown_tag_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not a pretrained tag"):
        export_bundle("snapshop-tiny", "laion2b_s34b_b79k", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unreachable_weights_give_helpful_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    # Offline mode with an empty cache makes open_clip's real download code fail at
    # once instead of retrying the network for a minute (and ignores any local cache).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ExportError) as info:
        export_bundle("ViT-B-32", "laion2b_s34b_b79k", tmp_path / "out")
    message = str(info.value)
    assert "Could not fetch the weights" in message
    assert "--checkpoint FILE" in message and "--pretrained none" in message
    assert not (tmp_path / "out").exists()


def test_other_input_errors(tmp_path: Path, tiny_bundle: Path) -> None:
    with pytest.raises(ExportError, match="unknown open_clip architecture"):
        export_bundle("no-such-arch", "none", tmp_path / "a")
    with pytest.raises(ExportError, match="unknown exporter"):
        export_bundle("snapshop-tiny", "none", tmp_path / "c", exporter="onnx-magic")
    with pytest.raises(ExportError, match="checkpoint file not found"):
        export_bundle("snapshop-tiny", "none", tmp_path / "b", checkpoint=tmp_path / "x.pt")
    # Refuses to write into a non-empty directory that is not a bundle.
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_bundle("snapshop-tiny", "none", busy)
    assert (busy / "keep.txt").read_text() == "mine"


def test_parity_failure_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Export a deliberately wrong image graph (features reversed): parity must catch it.
    def broken(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        return model.encode_image(pixel_values).flip(-1)  # type: ignore[operator]

    monkeypatch.setattr(onnx_export, "_image_forward", broken)
    out = tmp_path / "out"
    with pytest.raises(ExportError, match=r"parity check failed.*image_random_min_cos"):
        # The TorchScript exporter is much faster for this tiny model and gets coverage too.
        export_bundle("snapshop-tiny", "none", out, exporter="torchscript")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary build directory was removed


def test_export_from_local_checkpoint(tmp_path: Path, tiny_bundle: Path) -> None:
    """A checkpoint file is loaded (offline path) and recorded in the manifest."""
    import open_clip

    openclip_models.import_open_clip()  # registers snapshop-tiny
    torch.manual_seed(123)
    model = open_clip.create_model("snapshop-tiny", pretrained=None)
    checkpoint = tmp_path / "tiny.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)

    out = tmp_path / "from_ckpt"
    manifest = export_bundle(
        "snapshop-tiny", "none", out, checkpoint=checkpoint, exporter="torchscript"
    )
    assert manifest.pretrained == "checkpoint:tiny.pt"
    assert manifest.extra["exporter"] == {"image": "torchscript", "text": "torchscript"}
    assert str(checkpoint.resolve()) in manifest.weights_source
    assert "image_real_min_cos" not in manifest.parity  # no parity images given

    # Different weights from the seeded random tiny bundle -> different model and vectors.
    assert manifest.model_id != load_manifest(tiny_bundle).model_id
    texts = ["red dress", "blue jeans"]
    ours = Encoder(out, device="cpu").encode_texts(texts)
    with torch.no_grad():
        ref = model.eval().encode_text(open_clip.get_tokenizer("snapshop-tiny")(texts))
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    assert np.allclose(ours, ref, atol=1e-5)
