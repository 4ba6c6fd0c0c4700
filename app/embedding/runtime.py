"""ONNX Runtime inference for a model bundle (no torch, no open_clip)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from app.embedding.bundle import (
    EMBEDDINGS_OUTPUT,
    IMAGE_INPUT,
    IMAGE_MODEL_FILE,
    INSTANCE_OUTPUT,
    TEXT_INPUT,
    TEXT_MODEL_FILE,
    BundleError,
    Manifest,
    load_manifest,
)
from app.embedding.preprocess import preprocess_images
from app.embedding.tokenizer import length_groups, load_tokenizer, token_lengths, trim_padding

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")
# Token positions per text batch (texts x padded length): measured on 2 cores, batches of ~8-16
# product texts (~25 tokens) sorted by length ran 20-25 % faster per text than 32 unsorted ones.
TEXT_BATCH_ROWS = 256

# onnxruntime-gpu lists CUDA as available even where its libraries or the GPU are
# missing; remember a failed attempt so "auto" does not retry (and re-log) per session.
_cuda_unusable = False
_cuda_lock = threading.Lock()


class ProviderError(RuntimeError):
    """The requested device cannot be used; the message says what to change."""


def select_providers(device: str) -> list[str]:
    """Execution providers to ask onnxruntime for, in preference order.

    This reflects what onnxruntime *claims*; ``Encoder`` confirms what the session
    actually got.
    """
    if device not in DEVICES:
        raise ProviderError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    available = ort.get_available_providers()
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        if CUDA not in available:
            raise ProviderError(
                "device 'cuda' requested but this onnxruntime build has no CUDA provider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu or use device 'cpu'"
            )
        return [CUDA, CPU]
    if CUDA in available and not _cuda_unusable and nvidia_gpu_present():
        return [CUDA, CPU]
    return [CPU]


def nvidia_gpu_present() -> bool:
    """Whether the NVIDIA driver exposes a device to this process.

    "auto" only tries CUDA where a GPU exists: on CPU-only machines onnxruntime-gpu would
    otherwise print a loud library-load error at every start before falling back.
    """
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def default_threads() -> int:
    """Physical cores available to this process (hyper-threads rarely help GEMMs)."""
    try:
        logical = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        logical = os.cpu_count() or 1
    physical = _physical_cores()
    return max(1, min(logical, physical) if physical else logical)


def _physical_cores() -> int | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    cores: set[tuple[str, str]] = set()
    physical_id = core_id = ""
    for line in [*text.splitlines(), ""]:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical_id = value.strip()
        elif key == "core id":
            core_id = value.strip()
        elif not line.strip():
            if core_id:
                cores.add((physical_id, core_id))
            physical_id = core_id = ""
    return len(cores) or None


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # A zero vector stays zero instead of becoming NaN.
    out: np.ndarray = (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return out


class Encoder:
    """Embeds images and texts with a bundle's ONNX towers.

    Both sessions are created in ``__init__`` so a broken bundle or unusable device
    fails at startup, and ``provider`` is known from the start. ``InferenceSession.run``
    is thread-safe, so one Encoder can serve a thread pool.
    """

    def __init__(
        self,
        bundle_dir: Path,
        device: str = "auto",
        threads: int | None = None,
        max_batch: int = 32,
        *,
        verify: bool = True,
        concurrent_runs: int | None = None,
        spinning: bool = False,
        parallel_towers: bool = False,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if concurrent_runs is not None and concurrent_runs < 1:
            raise ValueError("concurrent_runs must be at least 1")
        self.bundle_dir = Path(bundle_dir)
        self.manifest: Manifest = load_manifest(self.bundle_dir, verify=verify)
        self.model_id = self.manifest.model_id
        self.dim = self.manifest.embed_dim
        # The image graph's identity embedding (0: the bundle has none, e.g. older bundles).
        self.instance_dim = self.manifest.instance_dim
        self.max_batch = max_batch
        self.device = device
        self.threads = threads if threads and threads > 0 else default_threads()
        # ``parallel_towers``: the caller runs the image and the text tower at the same time
        # (ingest), so each session takes half of the thread budget and the two together use
        # it once. Measured on 2 cores, 256 catalog items through both towers: 11.4 ms an item
        # with one tower after the other on 2 threads, 9.6 ms with both at once on 1 thread
        # each (a run of these small ops on 2 threads is only 1.6-1.8x as fast as on 1).
        self.parallel_towers = parallel_towers and self.threads >= 2
        self.session_threads = self.threads // 2 if self.parallel_towers else self.threads
        self.spinning = spinning
        try:
            self.tokenizer = load_tokenizer(
                self.bundle_dir, self.manifest.tokenizer, self.manifest.context_length
            )
        except Exception as exc:  # tokenizers raises plain Exception on bad JSON
            raise BundleError(f"cannot load tokenizer from {self.bundle_dir}: {exc}") from exc

        self._image = self._create_session(IMAGE_MODEL_FILE, device)
        self.provider: str = self._image.get_providers()[0]
        # The text tower follows the image tower so both always run on the same device.
        self._text = self._create_session(
            TEXT_MODEL_FILE, "cuda" if self.provider == CUDA else "cpu"
        )
        # A cap on model runs at once (None: none). Measured against the thought that runs of
        # concurrent requests only fight over the cores each already spreads over: on 2 cores
        # with 8 clients, one run at a time cut photo q/s 43 -> 40 and photo + text 26 -> 22
        # (dev catalog, two rounds each): overlapping runs fill the gaps that the GIL-bound
        # engine searches leave. So it is off unless asked for (SNAPSHOP_MODEL_RUNS).
        self.concurrent_runs = concurrent_runs
        self._runs = threading.BoundedSemaphore(concurrent_runs) if concurrent_runs else None
        self._check_signature(self._image, IMAGE_MODEL_FILE, IMAGE_INPUT)
        self._check_signature(self._text, TEXT_MODEL_FILE, TEXT_INPUT)
        # Bundles exported with a dynamic token axis take ids trimmed to the longest text of
        # the batch; older ones (a fixed context length in the graph) get the full width.
        shape = self._text.get_inputs()[0].shape
        self.text_dynamic_length = len(shape) == 2 and not isinstance(shape[1], int)
        if self.instance_dim and INSTANCE_OUTPUT not in {o.name for o in self._image.get_outputs()}:
            raise BundleError(
                f"{self.bundle_dir / IMAGE_MODEL_FILE}: the manifest says instance_dim "
                f"{self.instance_dim} but the graph has no {INSTANCE_OUTPUT!r} output"
            )
        log.info(
            "encoder %s on %s (device=%s, intra-op threads=%d per tower%s, max batch %d)",
            self.model_id,
            self.provider,
            device,
            self.session_threads,
            ", towers in parallel" if self.parallel_towers else "",
            max_batch,
        )

    def _options(self) -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.session_threads
        # Parallelism comes from intra-op threads (and the caller's pool); one
        # inter-op thread avoids oversubscribing the cores.
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not self.spinning:
            # Idle intra-op threads busy-wait for the next op by default, on cores that the
            # engine's searches, decoding and the other tower need. Measured on 2 cores (bench
            # README): photo + text at 100k 46.7 -> 37.8 ms in-process (the image tower 22 ->
            # 12 ms once the text tower's threads stopped spinning beside it); ingest's
            # one-image loop 25 -> 57 images/s, the pipeline +9 %.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return opts

    def _create_session(self, file_name: str, device: str) -> ort.InferenceSession:
        global _cuda_unusable
        path = self.bundle_dir / file_name
        providers = select_providers(device)
        try:
            session = ort.InferenceSession(str(path), self._options(), providers=providers)
        except Exception as exc:
            if device == "auto" and providers[0] == CUDA:
                log.warning("CUDA session for %s failed (%s); falling back to CPU", path, exc)
                with _cuda_lock:
                    _cuda_unusable = True
                return self._create_session(file_name, "cpu")
            if device == "cuda":
                raise ProviderError(
                    f"device 'cuda' requested but onnxruntime failed to start CUDA for {path}: "
                    f"{exc}; use device 'cpu' or 'auto'"
                ) from exc
            raise BundleError(f"onnxruntime cannot load {path}: {exc}") from exc
        got = session.get_providers()[0]
        if providers[0] == CUDA and got != CUDA:
            # onnxruntime silently drops CUDA when its libraries or the GPU are missing.
            with _cuda_lock:
                _cuda_unusable = True
            if device == "cuda":
                raise ProviderError(
                    f"device 'cuda' requested but onnxruntime could not start CUDA for {path} "
                    f"(session fell back to {got}); check the GPU driver, CUDA and cuDNN "
                    "libraries, or use device 'cpu'/'auto'"
                )
            log.info("CUDA provider listed but not usable here; using %s", got)
        return session

    def _check_signature(
        self, session: ort.InferenceSession, file_name: str, input_name: str
    ) -> None:
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if inputs != [input_name] or EMBEDDINGS_OUTPUT not in outputs:
            raise BundleError(
                f"{self.bundle_dir / file_name}: expected input {input_name!r} and output "
                f"{EMBEDDINGS_OUTPUT!r}, found inputs {inputs} and outputs {outputs}"
            )

    def _run(
        self,
        session: ort.InferenceSession,
        input_name: str,
        batch: np.ndarray,
        outputs: tuple[tuple[str, int], ...] = (),
    ) -> list[np.ndarray]:
        """The named ``outputs`` (name, width) of one run; default: the embeddings only."""
        outputs = outputs or ((EMBEDDINGS_OUTPUT, self.dim),)
        names = [name for name, _ in outputs]
        if self.provider == CUDA:
            # I/O binding: one host-to-device copy of the batch and one copy of the result
            # back, instead of ONNX Runtime staging both through its CPU allocator per run.
            binding = session.io_binding()
            binding.bind_cpu_input(input_name, np.ascontiguousarray(batch))
            for name in names:
                binding.bind_output(name, "cuda")
            session.run_with_iobinding(binding)
            raws = binding.copy_outputs_to_cpu()
        else:
            with self._runs or nullcontext():
                raws = session.run(names, {input_name: batch})
        got = [np.asarray(raw, dtype=np.float32) for raw in raws]
        for out, (name, width) in zip(got, outputs, strict=True):
            if out.shape != (batch.shape[0], width):
                raise BundleError(
                    f"model {self.model_id} returned shape {out.shape} for {name!r}, "
                    f"expected ({batch.shape[0]}, {width})"
                )
        return got

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The image tower's input for ``images``: (N, 3, S, S) float32.

        Separate from ``encode_pixels`` so callers can preprocess in worker threads while the
        model runs the previous batch (ingestion does).
        """
        return preprocess_images(images, self.manifest)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(N, dim) float32, L2-normalised, from ``preprocess`` output."""
        out = np.empty((len(pixels), self.dim), dtype=np.float32)
        for start in range(0, len(pixels), self.max_batch):
            chunk = pixels[start : start + self.max_batch]
            out[start : start + len(chunk)] = self._run(self._image, IMAGE_INPUT, chunk)[0]
        return _l2_normalize(out)

    def encode_pixels_with_instance(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, dim) and (N, instance_dim) float32, L2-normalised, from one run of the graph.

        Without an instance output in the bundle (``instance_dim`` 0) the second is (N, 0).
        """
        if not self.instance_dim:
            return self.encode_pixels(pixels), np.empty((len(pixels), 0), dtype=np.float32)
        out = np.empty((len(pixels), self.dim), dtype=np.float32)
        inst = np.empty((len(pixels), self.instance_dim), dtype=np.float32)
        wanted = ((EMBEDDINGS_OUTPUT, self.dim), (INSTANCE_OUTPUT, self.instance_dim))
        for start in range(0, len(pixels), self.max_batch):
            chunk = pixels[start : start + self.max_batch]
            emb, ins = self._run(self._image, IMAGE_INPUT, chunk, wanted)
            out[start : start + len(chunk)] = emb
            inst[start : start + len(chunk)] = ins
        return _l2_normalize(out), _l2_normalize(inst)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, dim) float32, L2-normalised."""
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), self.max_batch):
            chunk = images[start : start + self.max_batch]
            out[start : start + len(chunk)] = self.encode_pixels(self.preprocess(chunk))
        return out

    def encode_images_with_instance(
        self, images: Sequence[Image.Image]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, dim) and (N, instance_dim) float32, L2-normalised ((N, 0) without the head)."""
        out = np.empty((len(images), self.dim), dtype=np.float32)
        inst = np.empty((len(images), self.instance_dim), dtype=np.float32)
        for start in range(0, len(images), self.max_batch):
            chunk = images[start : start + self.max_batch]
            emb, ins = self.encode_pixels_with_instance(self.preprocess(chunk))
            out[start : start + len(chunk)] = emb
            inst[start : start + len(chunk)] = ins
        return out, inst

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, L2-normalised."""
        if isinstance(texts, str):
            raise TypeError("encode_texts expects a sequence of strings, not one string")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenizer.encode_batch(texts)
        pad = self.tokenizer.pad_id
        if self.text_dynamic_length:
            groups = length_groups(token_lengths(ids, pad), self.max_batch, TEXT_BATCH_ROWS)
        else:  # every batch runs the full context: order is moot
            groups = [
                np.arange(s, min(s + self.max_batch, len(texts)))
                for s in range(0, len(texts), self.max_batch)
            ]
        for rows in groups:
            batch = trim_padding(ids[rows], pad) if self.text_dynamic_length else ids[rows]
            out[rows] = self._run(self._text, TEXT_INPUT, batch)[0]
        return _l2_normalize(out)

    def __repr__(self) -> str:
        return f"Encoder({self.model_id!r}, provider={self.provider!r}, dim={self.dim})"
