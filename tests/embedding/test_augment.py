"""The phone-snapshot training augmentations: deterministic, RGB, sane sizes, actually change."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.embedding.training import augment

STEPS: list[Callable[[Image.Image, random.Random], Image.Image]] = [
    augment.perspective_warp,
    augment.rotate,
    augment.textured_background,
    augment.hand_occlusion,
    augment.shelf_edge,
    augment.lighting_cast,
    augment.motion_blur,
    augment.down_up_scale,
    augment.screenshot_border,
    augment.jpeg_reencode,
    augment.phone_snapshot,
]


@pytest.fixture(scope="module")
def product(catalog_dir: Path) -> Image.Image:
    """A real catalog shot (studio fashion photo, about 127x170)."""
    path = sorted((catalog_dir / "images").glob("fashion_*.jpg"))[0]
    with Image.open(path) as img:
        return img.convert("RGB")


@pytest.mark.parametrize("step", STEPS, ids=lambda f: f.__name__)
def test_step_is_deterministic_rgb_and_sane(
    step: Callable[[Image.Image, random.Random], Image.Image], product: Image.Image
) -> None:
    for seed in range(5):
        a = step(product, random.Random(seed))
        b = step(product, random.Random(seed))
        assert a.mode == "RGB"
        assert a.tobytes() == b.tobytes(), f"{step.__name__} differs for seed {seed}"
        # No degenerate outputs: within a factor of ~2 of the source in each side.
        for got, src in zip(a.size, product.size, strict=True):
            assert src // 2 <= got <= 2 * src + 1, (step.__name__, a.size)
    assert step(product, random.Random(0)).tobytes() != step(product, random.Random(1)).tobytes()


@pytest.mark.parametrize("step", STEPS, ids=lambda f: f.__name__)
def test_step_has_a_one_line_docstring(step: Callable[..., Image.Image]) -> None:
    assert step.__doc__ and step.__doc__.strip().splitlines()[0].strip()


def test_steps_change_the_image(product: Image.Image) -> None:
    for step in STEPS:
        if step is augment.phone_snapshot:
            continue  # may, by chance, apply nothing but a re-encode; checked below
        out = step(product, random.Random(0))
        same_size = out.size == product.size
        assert not same_size or out.tobytes() != product.tobytes(), step.__name__


def test_phone_snapshot_size_and_recognisable(product: Image.Image) -> None:
    """With ``size``, a square view; on average still close to the product in colour."""
    src = np.asarray(product.resize((8, 8)), dtype=np.float32)
    diffs = []
    for seed in range(20):
        view = augment.phone_snapshot(product, random.Random(seed), size=96)
        assert view.size == (96, 96) and view.mode == "RGB"
        diffs.append(np.abs(np.asarray(view.resize((8, 8)), dtype=np.float32) - src).mean())
    # Loose: distorted (not identical) but not noise (random images differ by ~85 on average).
    assert 0 < float(np.median(diffs)) < 70


def test_phone_snapshot_accepts_other_modes(product: Image.Image) -> None:
    grey = product.convert("L")
    out = augment.phone_snapshot(grey, random.Random(0))
    assert out.mode == "RGB"


def test_existing_snapshot_recipe_unchanged(product: Image.Image) -> None:
    """The current recipe's view is still a ``size`` square RGB view, deterministic per seed."""
    a = augment.snapshot(product, 64, random.Random(7))
    assert a.size == (64, 64) and a.mode == "RGB"
    assert a.tobytes() == augment.snapshot(product, 64, random.Random(7)).tobytes()
