"""Parity checks: the exported ONNX graphs, run by ONNX Runtime, against the torch model.

Random pixels and token ids at several batch sizes test the graphs alone; real strings (and
real images, when given) test the whole inference path: our tokenizer and preprocessing too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.embedding.bundle import (
    EMBEDDINGS_OUTPUT,
    IMAGE_INPUT,
    IMAGE_MODEL_FILE,
    INSTANCE_OUTPUT,
    TEXT_INPUT,
    TEXT_MODEL_FILE,
    Manifest,
)
from app.embedding.export.spec import ExportError, ExportSpec, has_instance_head
from app.embedding.preprocess import ImageError, load_image, preprocess_images
from app.embedding.tokenizer import TextTokenizer, trim_padding

log = logging.getLogger(__name__)

PARITY_MIN_COSINE = 0.999
RANDOM_PARITY_BATCHES = (4, 1)
PARITY_TEXTS = (
    "navy blue tshirt for men",
    "Women's red floral summer dress",
    "leather wallet, brown — 2 pack!",
    "Kids' running shoes (size 34)",
    "",
)


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray((a * b).sum(axis=1) / np.maximum(denom, 1e-30))


def random_token_ids(
    rng: np.random.Generator, batch: int, context_length: int, vocab_size: int, sot: int, eot: int
) -> np.ndarray:
    """``batch`` rows of well-formed token ids (start, random body, end, padding)."""
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
        self.instance = has_instance_head(model)

    def compare(self, key: str, kind: str, ref_input: np.ndarray, onnx_input: np.ndarray) -> None:
        torch = self.torch
        with torch.no_grad():
            tensor = torch.from_numpy(ref_input)
            if kind == "image" and self.instance:
                ref_t, inst_t = self.model.encode_image_with_instance(tensor)
                ref, ref_inst = ref_t.numpy(), inst_t.numpy()
            elif kind == "image":
                ref = self.model.encode_image(tensor).numpy()
            else:
                ref = self.model.encode_text(tensor).numpy()
        name, input_name = (
            (IMAGE_MODEL_FILE, IMAGE_INPUT) if kind == "image" else (TEXT_MODEL_FILE, TEXT_INPUT)
        )
        (got,) = self.sessions[name].run([EMBEDDINGS_OUTPUT], {input_name: onnx_input})
        self._record(key, kind, name, onnx_input, ref, got)
        if kind == "image" and self.instance:
            # The instance output is checked on the same inputs, under keys of its own.
            (got_inst,) = self.sessions[name].run([INSTANCE_OUTPUT], {input_name: onnx_input})
            self._record(f"{key}_instance", "instance", name, onnx_input, ref_inst, got_inst)

    def _record(
        self,
        key: str,
        kind: str,
        name: str,
        onnx_input: np.ndarray,
        ref: np.ndarray,
        got: np.ndarray,
    ) -> None:
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


def check_parity(
    open_clip: Any,
    torch: Any,
    spec: ExportSpec,
    bundle: Path,
    draft: Manifest,
    tokenizer: TextTokenizer,
    parity_images: Sequence[Path],
) -> tuple[dict[str, float], int, int]:
    """Run torch and ONNX Runtime side by side; raise ExportError below the threshold.

    Returns the parity numbers, the model's embedding size and its instance embedding size
    (0 without an instance head).
    """
    model = spec.model
    parity = _Parity(torch, model, bundle)
    rng = np.random.default_rng(0)
    size = draft.image_size
    for batch in RANDOM_PARITY_BATCHES:
        pixels = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
        parity.compare("image_random", "image", pixels, pixels)
        ids = random_token_ids(
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
    shape = parity.sessions[TEXT_MODEL_FILE].get_inputs()[0].shape
    if len(shape) == 2 and not isinstance(shape[1], int):
        # A dynamic token axis: the runtime trims padding, so trimmed ids must embed exactly
        # like torch's full-length ones.
        parity.compare("text_trimmed", "text", ref_ids, trim_padding(our_ids, tokenizer.pad_id))

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
        instance_dim = 0
        if parity.instance:
            one = torch.zeros(1, 3, size, size)
            instance_dim = int(model.encode_image_with_instance(one)[1].shape[-1])
    log.info("parity ok: %s", parity.numbers)
    return parity.numbers, embed_dim, instance_dim
