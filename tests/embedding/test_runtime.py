"""ONNX Runtime encoder: providers, shapes, normalisation, batching, thread safety."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.embedding import BundleError, Encoder, ProviderError, load_image, select_providers
from app.embedding.runtime import CPU, CUDA, default_threads

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def encoder(tiny_bundle: Path) -> Encoder:
    return Encoder(tiny_bundle, device="cpu", max_batch=4)


@pytest.fixture(scope="module")
def images(catalog_dir: Path) -> list[Image.Image]:
    return [load_image(p) for p in sorted((catalog_dir / "images").iterdir())[:5]]


def test_select_providers() -> None:
    assert select_providers("cpu") == [CPU]
    assert select_providers("auto")[-1] == CPU
    with pytest.raises(ProviderError, match="unknown device"):
        select_providers("tpu")


def test_cuda_request_is_honoured_or_refused(tiny_bundle: Path) -> None:
    # Either CUDA really runs, or asking for it fails loudly: never a silent CPU fallback.
    try:
        enc = Encoder(tiny_bundle, device="cuda")
    except ProviderError as exc:
        assert "cuda" in str(exc).lower()
        cuda_works = False
    else:
        assert enc.provider == CUDA
        cuda_works = True
    auto = Encoder(tiny_bundle, device="auto")
    assert auto.provider == (CUDA if cuda_works else CPU)


def test_encoder_attributes(encoder: Encoder, tiny_bundle: Path) -> None:
    assert encoder.provider == CPU
    assert encoder.dim == 64
    assert encoder.model_id == encoder.manifest.model_id
    assert encoder.model_id.startswith("snapshop-tiny:none:")
    assert 1 <= default_threads() == encoder.threads
    assert "CPUExecutionProvider" in repr(encoder)


def test_image_embeddings(encoder: Encoder, images: list[Image.Image]) -> None:
    one = encoder.encode_images(images[:1])
    five = encoder.encode_images(images)  # max_batch=4: two runs
    for vecs, n in ((one, 1), (five, 5)):
        assert vecs.shape == (n, 64) and vecs.dtype == np.float32
        assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # Batch composition does not change a vector.
    assert np.allclose(one[0], five[0], atol=1e-5)
    same = encoder.encode_images([images[0], images[0]])
    assert np.array_equal(same[0], same[1])
    # Different products give clearly different vectors (even with random weights).
    assert float(five[0] @ five[1]) < 0.9999
    assert len({tuple(np.round(v, 4)) for v in five}) == 5


def test_text_embeddings(encoder: Encoder) -> None:
    texts = ["navy blue tshirt for men", "red dress", "", "leather wallet", "word " * 100]
    vecs = encoder.encode_texts(texts)
    assert vecs.shape == (5, 64) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(encoder.encode_texts(texts[:1])[0], vecs[0], atol=1e-5)
    assert float(vecs[0] @ vecs[1]) < 0.9999
    with pytest.raises(TypeError):
        encoder.encode_texts("red dress")


def test_texts_batched_by_length_come_back_in_their_order(encoder: Encoder) -> None:
    """Each vector is its own text's, as if it had been embedded alone (this bundle's text
    graph has a fixed length; test_instance.py checks a dynamic one, batched by length)."""
    texts = [("word " * n).strip() or "x" for n in (30, 1, 12, 2, 40, 3, 25, 5, 7, 18)]
    together = encoder.encode_texts(texts)
    alone = np.stack([encoder.encode_texts([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=1e-5)
    assert len({v.tobytes() for v in together}) == len(texts)


def test_empty_inputs(encoder: Encoder) -> None:
    assert encoder.encode_images([]).shape == (0, 64)
    assert encoder.encode_texts([]).shape == (0, 64)


def test_concurrent_use_matches_serial(encoder: Encoder, images: list[Image.Image]) -> None:
    texts = [f"product number {i}" for i in range(16)]
    serial_t = encoder.encode_texts(texts)
    serial_i = encoder.encode_images(images)
    with ThreadPoolExecutor(max_workers=4) as pool:
        text_jobs = [pool.submit(encoder.encode_texts, [t]) for t in texts]
        image_jobs = [pool.submit(encoder.encode_images, [img]) for img in images]
        got_t = np.concatenate([j.result() for j in text_jobs])
        got_i = np.concatenate([j.result() for j in image_jobs])
    assert np.allclose(got_t, serial_t, atol=1e-5)
    assert np.allclose(got_i, serial_i, atol=1e-5)


class _CountingSession:
    """Wraps a session: how many runs were inside it at once, at most. Each run waits (up to
    0.5 s) for a second one to come in, so runs that may overlap do."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.inside = 0
        self.most = 0
        self.lock = threading.Lock()
        self.second = threading.Event()

    def run(self, *args: object) -> object:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            if self.inside >= 2:
                self.second.set()
        self.second.wait(0.5)
        try:
            return self.session.run(*args)  # type: ignore[attr-defined]
        finally:
            with self.lock:
                self.inside -= 1

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)


@pytest.mark.parametrize("runs", [1, 2])
def test_concurrent_model_runs_stay_within_the_budget(tiny_bundle: Path, runs: int) -> None:
    """On CPU, runs from concurrent requests beyond ``concurrent_runs`` wait their turn."""
    encoder = Encoder(tiny_bundle, device="cpu", threads=1, concurrent_runs=runs)
    counting = _CountingSession(encoder._text)
    encoder._text = counting  # type: ignore[assignment]
    texts = [[f"query {i}"] for i in range(6)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(encoder.encode_texts, texts))
    assert counting.most == runs
    assert np.allclose(np.concatenate(got), encoder.encode_texts([t[0] for t in texts]), atol=1e-5)


def test_model_runs_are_not_capped_unless_asked(tiny_bundle: Path) -> None:
    encoder = Encoder(tiny_bundle, device="cpu", threads=1)
    assert encoder.concurrent_runs is None
    counting = _CountingSession(encoder._text)
    encoder._text = counting  # type: ignore[assignment]
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(encoder.encode_texts, [["a"], ["b"], ["c"]]))
    assert counting.most >= 2
    with pytest.raises(ValueError):
        Encoder(tiny_bundle, device="cpu", concurrent_runs=0)


def test_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not found"):
        Encoder(tmp_path / "nothing")
    with pytest.raises(ValueError, match="max_batch"):
        Encoder(tmp_path, max_batch=0)


def test_inference_does_not_import_torch(tiny_bundle: Path, catalog_dir: Path) -> None:
    # A fresh interpreter: this test process already imported torch for the export.
    image = sorted((catalog_dir / "images").iterdir())[0]
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from app.embedding import Encoder, load_image
        enc = Encoder(Path({str(tiny_bundle)!r}), device="auto")
        enc.encode_images([load_image(Path({str(image)!r}))])
        enc.encode_texts(["red dress"])
        heavy = sorted(m for m in ("torch", "open_clip", "torchvision") if m in sys.modules)
        print("HEAVY", heavy)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


@pytest.mark.parametrize("spinning", [False, True])
def test_idle_threads_spin_only_when_asked(tiny_bundle: Path, spinning: bool) -> None:
    """Both sessions are created with busy-waiting off unless ``spinning`` asks for it (idle
    spinners took the cores the engine and the other tower need)."""
    encoder = Encoder(tiny_bundle, device="cpu", threads=2, spinning=spinning)
    for session in (encoder._image, encoder._text):
        config = session.get_session_options()
        key = "session.intra_op.allow_spinning"
        if spinning:
            with pytest.raises(Exception, match="allow_spinning"):
                config.get_session_config_entry(key)
        else:
            assert config.get_session_config_entry(key) == "0"
    assert encoder.encode_texts(["a red dress"]).shape == (1, encoder.dim)


@pytest.mark.parametrize(
    ("threads", "parallel", "per_tower"), [(2, True, 1), (4, True, 2), (1, True, 1), (2, False, 2)]
)
def test_parallel_towers_split_the_thread_budget(
    tiny_bundle: Path, encoder: Encoder, threads: int, parallel: bool, per_tower: int
) -> None:
    """With towers in parallel (ingest) each session gets half the budget, so the two runs at
    once use it once; a budget of one thread is not split (nor run in parallel)."""
    split = Encoder(tiny_bundle, device="cpu", threads=threads, parallel_towers=parallel)
    assert split.parallel_towers is (parallel and threads >= 2)
    assert split.session_threads == per_tower
    for session in (split._image, split._text):
        assert session.get_session_options().intra_op_num_threads == per_tower
    texts = ["a red dress", "blue jeans"]
    assert np.allclose(split.encode_texts(texts), encoder.encode_texts(texts), atol=1e-5)
