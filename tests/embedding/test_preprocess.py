"""PIL/numpy preprocessing against open_clip's own eval transform, and image loading."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import open_clip
import pytest
from PIL import Image

from app.embedding import ImageError, Manifest, load_image, load_manifest, preprocess_images

# torchvision resizes PIL images with PIL, and ToTensor/Normalize are the same float32
# operations we do in numpy, so the expected difference is exactly 0; 1e-6 only leaves
# room for a different float summation order in a future numpy/torch.
TOLERANCE = 1e-6


def _reference(images: list[Image.Image], manifest: Manifest) -> np.ndarray:
    transform = open_clip.image_transform(
        manifest.image_size,
        is_train=False,
        mean=manifest.mean,
        std=manifest.std,
        resize_mode=manifest.resize,
        interpolation=manifest.interpolation,
    )
    return np.stack([transform(img).numpy() for img in images])


def _varied_catalog_images(catalog_dir: Path, n: int = 10) -> list[Path]:
    """n real images covering every size on offer (catalog and shopper photos)."""
    by_size: dict[tuple[int, int], list[Path]] = {}
    for folder in (catalog_dir / "images", catalog_dir / "dev_queries" / "images"):
        for path in sorted(folder.iterdir()):
            with Image.open(path) as img:
                by_size.setdefault(img.size, []).append(path)
    picked: list[Path] = []
    while len(picked) < n and any(by_size.values()):
        for paths in by_size.values():
            if paths and len(picked) < n:
                picked.append(paths.pop(0))
    return picked


@pytest.fixture(scope="module")
def manifests(tiny_bundle: Path) -> list[Manifest]:
    tiny = load_manifest(tiny_bundle)
    # 64 px (the tiny model) and 224 px (ViT-B-32) exercise up- and down-scaling.
    return [tiny, dataclasses.replace(tiny, image_size=224)]


def test_matches_open_clip_transform(catalog_dir: Path, manifests: list[Manifest]) -> None:
    paths = _varied_catalog_images(catalog_dir)
    assert len(paths) == 10
    images = [load_image(p) for p in paths]
    rng = np.random.default_rng(0)
    images.append(Image.fromarray(rng.integers(0, 256, (301, 517, 3), dtype=np.uint8)))
    images.append(Image.fromarray(rng.integers(0, 256, (517, 301, 3), dtype=np.uint8)))
    # The real photos come in four sizes (127x170, 128x128, 224x224, 168x224).
    assert len({img.size for img in images}) >= 6
    for manifest in manifests:
        ours = preprocess_images(images, manifest)
        ref = _reference(images, manifest)
        size = manifest.image_size
        assert ours.shape == ref.shape == (len(images), 3, size, size)
        assert ours.dtype == np.float32
        max_diff = float(np.abs(ours - ref).max())
        assert max_diff <= TOLERANCE, f"max abs diff {max_diff} at {size}px"


def test_non_rgb_modes_are_converted(manifests: list[Manifest]) -> None:
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 70, 3), dtype=np.uint8))
    grey = rgb.convert("L")
    ours = preprocess_images([grey], manifests[0])
    ref = _reference([grey.convert("RGB")], manifests[0])
    assert float(np.abs(ours - ref).max()) <= TOLERANCE


def test_degenerate_strip_is_bounded_and_close(manifests: list[Manifest]) -> None:
    # 400:1 takes the box-resize path that avoids a huge intermediate image.
    rng = np.random.default_rng(2)
    strip = Image.fromarray(rng.integers(0, 256, (10, 4000, 3), dtype=np.uint8))
    manifest = manifests[0]
    ours = preprocess_images([strip], manifest)
    ref = _reference([strip], manifest)
    assert ours.shape == ref.shape
    # One grey level is 1/255/std ~ 0.015 after normalisation.
    assert float(np.abs(ours - ref).mean()) < 0.015


def test_every_byte_value_normalises_as_the_formula_does(manifests: list[Manifest]) -> None:
    # All 256 levels in each channel (a 16 x 16 image, a channel's levels in its own order) at
    # the model's own size, so the resize keeps the pixels as they are.
    manifest = dataclasses.replace(manifests[0], image_size=16)
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    pixels = np.stack([levels, levels.T, levels[::-1]], axis=-1)
    ours = preprocess_images([Image.fromarray(pixels)], manifest)[0]
    mean = np.asarray(manifest.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(manifest.std, dtype=np.float32).reshape(3, 1, 1)
    formula = (pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0) - mean) / std
    assert np.array_equal(ours, formula)


def test_empty_batch(manifests: list[Manifest]) -> None:
    assert preprocess_images([], manifests[0]).shape == (0, 3, 64, 64)


def _jpeg_bytes(img: Image.Image, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def test_load_image_applies_exif_orientation() -> None:
    # Left half red, right half blue, 40x20; EXIF 6 means "rotate 90 degrees clockwise".
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20, 0] = 255
    arr[:, 20:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    img = load_image(_jpeg_bytes(Image.fromarray(arr), exif=exif, quality=95))
    assert img.size == (20, 40) and img.mode == "RGB"
    pixels = np.asarray(img).astype(int)
    # After a clockwise turn the red half is on top.
    assert pixels[5, 10, 0] > 200 and pixels[5, 10, 2] < 60
    assert pixels[35, 10, 2] > 200 and pixels[35, 10, 0] < 60


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK"])
def test_load_image_returns_rgb(tmp_path: Path, mode: str) -> None:
    img = Image.new("RGB", (12, 9), (200, 30, 40)).convert(mode)
    path = tmp_path / "img.tiff"
    img.save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (12, 9)


def test_load_image_path_and_bytes_agree(catalog_dir: Path) -> None:
    path = sorted((catalog_dir / "images").iterdir())[0]
    from_path = np.asarray(load_image(path))
    from_bytes = np.asarray(load_image(path.read_bytes()))
    assert np.array_equal(from_path, from_bytes)


def test_load_image_errors(tmp_path: Path, catalog_dir: Path) -> None:
    jpeg = sorted((catalog_dir / "images").iterdir())[0].read_bytes()
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    cases: list[tuple[Path | bytes, str]] = [
        (b"", "empty"),
        (b"definitely not an image", "not a recognised image"),
        (jpeg[: len(jpeg) // 2], "could not be decoded"),
        (tmp_path / "missing.jpg", "not found"),
        (empty, "empty"),
    ]
    for source, message in cases:
        with pytest.raises(ImageError, match=message):
            load_image(source)
    # A ValueError subclass, so callers validating input can catch it generically.
    assert issubclass(ImageError, ValueError)


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    import io

    from PIL import Image

    from app.embedding.preprocess import MAX_PIXELS, ImageError, load_image

    buf = io.BytesIO()
    Image.new("1", (9000, 8000)).save(buf, "PNG")  # 72 MP in a file of a few kB
    assert MAX_PIXELS < 9000 * 8000
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(ImageError, match="9000x8000 pixels, more than the 64 MP"):
        load_image(buf.getvalue())
