"""Training on a small slice of the real catalog: loss falls, the bundle loads, runs repeat."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest

from app.embedding import Encoder, load_image
from app.embedding.training.augment import snapshot
from app.embedding.training.data import epoch_batches, load_training_data
from app.embedding.training.loop import build_model, fit, train
from app.embedding.training.recipe import Recipe
from app.evaluation.queries import read_image_queries, split_one_per_product

TINY = {"image_size": 64, "batch_size": 16, "warmup_steps": 2, "context_length": 24}


@pytest.fixture(scope="module")
def extra_pairs(tmp_path_factory: pytest.TempPathFactory, mini_catalog: Path, catalog_dir: Path):
    """The dev shelf photos of the mini catalog's grocery products, in image_queries format."""
    with (mini_catalog / "products.csv").open(newline="") as fh:
        ours = {r["product_id"] for r in csv.DictReader(fh)}
    src = catalog_dir / "dev_queries" / "image_queries.csv"
    with src.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if r["relevant_product_ids"] in ours]
    assert len(rows) >= 6
    root = tmp_path_factory.mktemp("pairs")
    (root / "images").mkdir()
    for row in rows:
        (root / row["query_image"]).symlink_to(src.parent / row["query_image"])
    with (root / "pairs.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return root / "pairs.csv"


def test_one_photo_per_product_is_held_out_and_never_trained(
    mini_catalog: Path, extra_pairs: Path
) -> None:
    data = load_training_data(mini_catalog, extra_pairs)
    queries = read_image_queries(extra_pairs)
    held = {q.query_id for q in data.held_out}
    products = {min(q.relevant) for q in queries}
    assert len(held) == len(products)  # one per product (each has 3 photos)
    assert held.isdisjoint(data.trained_photo_ids)
    assert len(held) + len(data.trained_photo_ids) == len(queries)
    # The split is a pure function of the seed: evaluation can recompute it.
    assert {q.query_id for q in split_one_per_product(queries, 0)[1]} == held
    assert {q.query_id for q in split_one_per_product(queries, 1)[1]} != held


def test_batches_never_repeat_a_product(mini_catalog: Path, extra_pairs: Path) -> None:
    data = load_training_data(mini_catalog, extra_pairs)
    batches = list(epoch_batches(data, 16, photo_repeats=4, rng=random.Random(0)))
    assert batches
    for batch in batches:
        assert len({s.product for s in batch}) == len(batch)
    seen = sum(len(b) for b in batches)
    assert seen >= len(data.catalog)  # the whole catalog is covered each epoch


def test_augmentation_is_seeded(catalog_dir: Path) -> None:
    img = load_image(next((catalog_dir / "images").glob("*.jpg")))
    a = [np.asarray(snapshot(img, 64, random.Random(5))) for _ in range(3)]
    b = np.asarray(snapshot(img, 64, random.Random(6)))
    assert a[0].shape == (64, 64, 3)
    assert all(np.array_equal(a[0], x) for x in a[1:])
    assert not np.array_equal(a[0], b)


def test_same_seed_same_losses(mini_catalog: Path) -> None:
    recipe = Recipe(steps=3, **TINY)
    runs = []
    for _ in range(2):
        data = load_training_data(mini_catalog)
        rng = random.Random(recipe.seed)
        import torch

        torch.manual_seed(recipe.seed)
        runs.append(fit(build_model(recipe, data), data, recipe, rng).losses)
    assert runs[0] == runs[1]
    assert len(runs[0]) == 3


def test_training_lowers_the_loss_and_writes_a_loadable_bundle(
    tmp_path: Path, mini_catalog: Path, extra_pairs: Path
) -> None:
    recipe = Recipe(steps=16, **TINY)
    report = train(recipe, mini_catalog, tmp_path / "bundle", extra_pairs)
    first, last = report.loss_drop(window=4)
    assert last < first * 0.9, report.losses
    assert report.steps == 16

    encoder = Encoder(tmp_path / "bundle", device="cpu")
    manifest = encoder.manifest
    assert manifest.embed_dim == 384
    assert manifest.tokenizer["kind"] == "wordpiece"
    assert min(v for k, v in manifest.parity.items() if k.endswith("_min_cos")) >= 0.999
    training = manifest.extra["training"]
    assert training["steps"] == 16
    assert set(training["held_out_photo_ids"]).isdisjoint(training["trained_photo_ids"])
    texts = encoder.encode_texts(["red apple", "black t-shirt"])
    images = encoder.encode_images(
        [load_image(p) for p in sorted((mini_catalog / "images").iterdir())[:3]]
    )
    assert texts.shape == (2, 384)
    assert images.shape == (3, 384)
    assert np.allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    # Locked MiniLM: the bundle's text tower is the pretrained sentence encoder, so related
    # phrases are closer than unrelated ones.
    a, b, c = encoder.encode_texts(["red apple", "green apple fruit", "leather wallet"])
    assert float(a @ b) > float(a @ c)


def test_recipe_refuses_an_unknown_init(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="init must be imagenet or scratch, or a bundle"):
        Recipe(init=str(tmp_path))
    with pytest.raises(ValueError, match="text tower"):
        Recipe(text_tower="bert")


def test_training_continues_from_a_trained_bundle(tmp_path: Path, mini_catalog: Path) -> None:
    import torch

    first = Recipe(steps=2, **TINY)
    train(first, mini_catalog, tmp_path / "a")
    second = Recipe(steps=1, init=str(tmp_path / "a"), **TINY)
    data = load_training_data(mini_catalog)
    model = build_model(second, data)
    saved = torch.load(tmp_path / "a" / "train_state.pt", map_location="cpu")["model"]
    ours = model.state_dict()
    head = next(k for k in saved if k.startswith("clip.visual.head"))
    assert torch.equal(ours[head], saved[head])  # the image tower starts where "a" ended
    assert not any(k.startswith("clip.text.") for k in saved)  # locked MiniLM not duplicated
