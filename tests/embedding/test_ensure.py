"""`model ensure`: trains once per catalog + recipe, then answers from the cache."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from app.embedding import load_manifest
from app.embedding.training.ensure import ensure_model, training_key
from app.embedding.training.recipe import Recipe

TINY = Recipe(steps=3, image_size=64, batch_size=16, warmup_steps=1, context_length=24)


def test_second_call_is_cached_and_default_points_at_it(tmp_path: Path, mini_catalog: Path) -> None:
    models = tmp_path / "models"
    bundle, report = ensure_model(models, mini_catalog, recipe=TINY)
    assert report is not None and report.steps == 3
    assert load_manifest(bundle).extra["training"]["recipe_key"] == TINY.key()
    assert (models / "default").resolve() == bundle.resolve()

    started = time.perf_counter()
    again, report2 = ensure_model(models, mini_catalog, recipe=TINY)
    assert report2 is None
    assert again == bundle
    assert time.perf_counter() - started < 10


def test_key_follows_catalog_content_and_recipe(tmp_path: Path, mini_catalog: Path) -> None:
    base = training_key(mini_catalog, None, TINY)
    assert training_key(mini_catalog, None, TINY) == base
    assert training_key(mini_catalog, None, Recipe(steps=4)) != base
    copy = tmp_path / "cat"
    shutil.copytree(mini_catalog, copy, symlinks=True)
    text = (copy / "products.csv").read_text()
    (copy / "products.csv").write_text(text.replace("Men", "Women", 1))
    assert training_key(copy, None, TINY) != base
