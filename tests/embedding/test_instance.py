"""The instance vector end to end: both losses fall, the bundle carries the second output, ingest
writes the ``instance`` vector and search serves the ``image_instance`` leg."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from app.embedding import Encoder, load_image
from app.embedding.training.data import load_training_data
from app.embedding.training.loop import TrainReport, build_model, fit, train
from app.embedding.training.losses import instance_supcon
from app.embedding.training.recipe import Recipe
from app.search.leg_names import IMAGE_INSTANCE, IMAGE_TO_IMAGE
from app.search.query import SearchQuery
from app.search.service import SearchService
from app.store import INSTANCE_VECTOR, EdgeStore, StoreError
from ingestion.catalog import read_catalog
from ingestion.pipeline import ingest_catalog
from tests.fakes import INSTANCE_DIM, FakeEncoder, InstanceFakeEncoder

TINY = {"image_size": 64, "batch_size": 16, "warmup_steps": 2, "context_length": 24}
GEM_DIM = 16
INST = 32 + GEM_DIM  # the head's output, then the projected GeM features


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, mini_catalog: Path
) -> tuple[Path, TrainReport]:
    out = tmp_path_factory.mktemp("inst") / "bundle"
    recipe = Recipe(steps=16, instance_dim=32, instance_gem_dim=GEM_DIM, **TINY)
    return out, train(recipe, mini_catalog, out)


def test_both_losses_fall(trained: tuple[Path, TrainReport]) -> None:
    _, report = trained
    assert len(report.text_losses) == len(report.instance_losses) == 16
    first, last = report.loss_drop(window=4, losses=report.text_losses)
    assert last < first * 0.9, report.text_losses
    first, last = report.loss_drop(window=4, losses=report.instance_losses)
    assert last < first * 0.9, report.instance_losses


def test_bundle_has_the_instance_output(
    trained: tuple[Path, TrainReport], mini_catalog: Path
) -> None:
    bundle, _ = trained
    encoder = Encoder(bundle, device="cpu")
    assert encoder.manifest.instance_dim == encoder.instance_dim == INST
    assert encoder.manifest.parity["image_real_instance_min_cos"] >= 0.999
    assert encoder.manifest.parity["image_random_instance_min_cos"] >= 0.999
    images = [load_image(p) for p in sorted((mini_catalog / "images").iterdir())[:3]]
    emb, inst = encoder.encode_images_with_instance(images)
    assert emb.shape == (3, 384) and inst.shape == (3, INST)
    assert np.allclose(np.linalg.norm(inst, axis=1), 1.0, atol=1e-5)
    # Two unit parts scaled by the weight's square roots: the cosine is their weighted sum.
    weight = Recipe().instance_gem_weight
    assert np.allclose(np.linalg.norm(inst[:, :32], axis=1) ** 2, 1 - weight, atol=1e-4)
    assert np.allclose(np.linalg.norm(inst[:, 32:], axis=1) ** 2, weight, atol=1e-4)
    # The GeM part was fitted (principal axes of the catalog), so images differ in it.
    assert float(np.abs(inst[0, 32:] - inst[1, 32:]).max()) > 1e-3
    # The same graph run for the embeddings alone gives the same embeddings.
    assert np.allclose(encoder.encode_images(images), emb, atol=1e-5)


def test_a_model_without_the_head_trains_and_loads(tmp_path: Path, mini_catalog: Path) -> None:
    recipe = Recipe(steps=2, instance_dim=0, **TINY)
    report = train(recipe, mini_catalog, tmp_path / "plain")
    assert report.instance_losses == []
    encoder = Encoder(tmp_path / "plain", device="cpu")
    assert encoder.instance_dim == 0
    images = [load_image(p) for p in sorted((mini_catalog / "images").iterdir())[:2]]
    emb, inst = encoder.encode_images_with_instance(images)
    assert emb.shape == (2, 384) and inst.shape == (2, 0)


def test_instance_runs_repeat(mini_catalog: Path) -> None:
    recipe = Recipe(steps=2, instance_dim=16, **TINY)
    runs = []
    for _ in range(2):
        data = load_training_data(mini_catalog)
        torch.manual_seed(recipe.seed)
        report = fit(build_model(recipe, data), data, recipe, random.Random(recipe.seed))
        runs.append(report.instance_losses)
    assert runs[0] == runs[1]


@pytest.mark.parametrize("whiten", [0.0, 0.5, 1.0])
def test_gem_axes_are_whitened_by_the_recipes_power(mini_catalog: Path, whiten: float) -> None:
    recipe = Recipe(
        steps=1, instance_dim=16, instance_gem_dim=8, instance_gem_whiten=whiten, **TINY
    )
    model = build_model(recipe, load_training_data(mini_catalog)).eval()
    pixels = [
        torch.randn(12, 3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(3)
    ]
    with torch.no_grad():
        model.fit_gem_projection(pixels)
        feats = torch.cat([model.gem(model.trunk.forward_features(p)) for p in pixels])
        raw = torch.linalg.svdvals(feats - model.gem_mean)[:8]
        projected = torch.linalg.svdvals((feats - model.gem_mean) @ model.gem_proj)
    # Each principal axis is scaled by its singular value to the power -whiten: the fit set's
    # spread along it becomes s ** (1 - whiten) (all equal when fully whitened).
    assert torch.allclose(projected, raw ** (1 - whiten), rtol=1e-3)


def test_supcon_pulls_views_together() -> None:
    products = torch.tensor([0, 1, 2, 0, 1, 2])
    categories = torch.tensor([0, 0, 1, 0, 0, 1])
    aligned = torch.eye(3).repeat(2, 1)  # each product's two views identical, products apart
    crossed = torch.eye(3)[[0, 1, 2, 1, 2, 0]]  # views agree with another product
    good = instance_supcon(aligned, products, categories, 0.1, 2.0)
    bad = instance_supcon(crossed, products, categories, 0.1, 2.0)
    assert float(good) < float(bad)


def test_ingest_writes_the_instance_vector_and_search_serves_its_leg(
    trained: tuple[Path, TrainReport], mini_catalog: Path, tmp_path: Path
) -> None:
    bundle, _ = trained
    encoder = Encoder(bundle, device="cpu")
    store = EdgeStore(tmp_path / "qdrant")
    try:
        report = ingest_catalog(mini_catalog, store, encoder)
        assert report.images > 0
        assert INSTANCE_VECTOR in store.dense_vectors()
        assert store.info().extra["instance_dim"] == INST
        catalog = read_catalog(mini_catalog)
        product = catalog.products[3]
        points = store.product_points(product.product_id)
        vectors = store.vectors([points[0].id])[points[0].id]
        assert vectors[INSTANCE_VECTOR].shape == (INST,)
        photo = catalog.image_path(product.image_files[0]).read_bytes()
        _, inst = encoder.encode_images_with_instance([load_image(photo)])
        assert float(vectors[INSTANCE_VECTOR] @ inst[0]) > 0.999  # the same upsert, same photo

        service = SearchService(store, encoder)
        try:
            response = service.search(SearchQuery(image=photo, k=5, explain=True))
            assert IMAGE_INSTANCE in response.legs
            top = response.results[0]
            assert top.product_id == product.product_id
            assert top.ranks[IMAGE_INSTANCE] == 1
            # Its own photo: the whole photo's instance cosine is 1, though the legs search
            # with the mean over the photo and its centre crops.
            assert top.exact_match
            assert top.explain is not None and top.explain[IMAGE_INSTANCE].score < 0.999
        finally:
            service.close()
    finally:
        store.close()


def test_the_leg_is_skipped_without_instance_vectors(
    fake_encoder: FakeEncoder, mini_catalog: Path, tmp_path: Path
) -> None:
    store = EdgeStore(tmp_path / "qdrant")
    try:
        ingest_catalog(mini_catalog, store, fake_encoder)
        assert INSTANCE_VECTOR not in store.dense_vectors()
        photo = next((mini_catalog / "images").iterdir()).read_bytes()
        # A model with an instance head over a store without instance vectors: skipped.
        service = SearchService(store, InstanceFakeEncoder())
        try:
            legs = service.search(SearchQuery(image=photo)).legs
            assert IMAGE_INSTANCE not in legs and IMAGE_TO_IMAGE in legs
        finally:
            service.close()
        # The store refuses another model's (or another instance size's) vectors.
        with pytest.raises(StoreError, match="instance dim"):
            store.ensure_collection(fake_encoder.dim, fake_encoder.model_id, (), INSTANCE_DIM)
    finally:
        store.close()


def test_fake_instance_encoder_serves_the_leg_for_every_image_of_a_product(
    mini_catalog: Path, tmp_path: Path
) -> None:
    encoder = InstanceFakeEncoder()
    store = EdgeStore(tmp_path / "qdrant")
    try:
        ingest_catalog(mini_catalog, store, encoder)
        catalog = read_catalog(mini_catalog)
        service = SearchService(store, encoder, micro_batch=True)
        try:
            for product in catalog.products[:5]:
                for name in product.image_files:
                    photo = catalog.image_path(name).read_bytes()
                    response = service.search(SearchQuery(image=photo, k=3))
                    assert IMAGE_INSTANCE in response.legs
                    assert response.results[0].product_id == product.product_id
                    assert name in response.results[0].matched_images
        finally:
            service.close()
    finally:
        store.close()


def test_text_tower_runs_at_the_batch_s_own_length(trained: tuple[Path, TrainReport]) -> None:
    bundle, _ = trained
    encoder = Encoder(bundle, device="cpu")
    assert encoder.text_dynamic_length
    assert encoder.manifest.parity["text_trimmed_min_cos"] >= 0.999
    texts = ["shirt", "navy linen shirt with short sleeves"]
    full = encoder.tokenizer.encode_batch(texts)
    (padded,) = encoder._text.run(None, {"input_ids": full})
    padded = padded / np.linalg.norm(padded, axis=1, keepdims=True)
    # Trimmed to the longest text's tokens, the embeddings are those of the padded ids.
    assert np.allclose(encoder.encode_texts(texts), padded, atol=1e-5)


def test_texts_batched_by_length_are_each_their_own(trained: tuple[Path, TrainReport]) -> None:
    """A dynamic-length text tower runs texts in length-sorted batches: each vector still
    comes back in its text's place, equal to that text embedded alone."""
    bundle, _ = trained
    encoder = Encoder(bundle, device="cpu", max_batch=4)
    assert encoder.text_dynamic_length
    words = [
        "navy",
        "linen",
        "shirt",
        "with",
        "short",
        "sleeves",
        "for",
        "men",
        "in",
        "a",
        "blue",
        "summer",
        "cut",
    ]
    assert len(words) + 2 <= encoder.manifest.context_length  # none cut short: all distinct
    texts = [" ".join(words[:n]) for n in (9, 1, 4, 2, 13, 3, 7, 11, 5, 6)]
    together = encoder.encode_texts(texts)
    alone = np.stack([encoder.encode_texts([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=1e-5)
    assert len({v.tobytes() for v in together}) == len(texts)
