"""Training pairs: catalog images and extra (shopper) photos, each tied to its product's text."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from app.embedding.preprocess import load_image
from app.evaluation.queries import ImageQuery, read_image_queries, split_one_per_product
from ingestion.catalog import read_catalog
from ingestion.documents import product_text

# Attributes shoppers type ("navy shirt for men"): predicting them from the pooled image features
# teaches the image tower what the text targets alone teach slowly.
AUX_ATTRIBUTES = ("category", "color", "gender")


@dataclass(frozen=True)
class Sample:
    image: Image.Image
    product: int  # index into TrainingData.product_ids
    is_photo: bool  # an extra (shopper) photo rather than the catalog's own image


@dataclass
class TrainingData:
    product_ids: list[str]
    texts: list[str]  # the same product text the BM25 leg indexes
    # Auxiliary labels per attribute (category path, colour, gender): one class index per
    # product, -1 where the catalog leaves the attribute empty.
    labels: dict[str, list[int]]
    label_names: dict[str, list[str]]
    catalog: list[Sample] = field(default_factory=list)
    photos: list[Sample] = field(default_factory=list)
    held_out: list[ImageQuery] = field(default_factory=list)
    trained_photo_ids: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def load_training_data(
    catalog_dir: Path, extra_pairs: Path | None = None, seed: int = 0
) -> TrainingData:
    """Decode the catalog once into memory (images are small) and attach extra photos.

    Extra photos are split with ``split_one_per_product``: one photo per product is held out
    for evaluation and never trained on.
    """
    catalog = read_catalog(catalog_dir)
    products = catalog.products
    values = {
        attr: [p.category if attr == "category" else p.attributes.get(attr, "") for p in products]
        for attr in AUX_ATTRIBUTES
    }
    names = {attr: sorted({v for v in vals if v}) for attr, vals in values.items()}
    data = TrainingData(
        product_ids=[p.product_id for p in products],
        texts=[product_text(p) for p in products],
        labels={
            attr: [names[attr].index(v) if v else -1 for v in vals] for attr, vals in values.items()
        },
        label_names=names,
    )
    index = {pid: i for i, pid in enumerate(data.product_ids)}
    for i, product in enumerate(products):
        for name in product.image_files:
            path = catalog.image_path(name)
            try:
                data.catalog.append(Sample(_small(load_image(path)), i, False))
            except Exception as exc:  # a broken file costs one sample, not the run
                data.skipped.append(f"{path}: {exc}")
    if extra_pairs is not None:
        train, held_out = split_one_per_product(read_image_queries(extra_pairs), seed)
        data.held_out = held_out
        for query in train:
            known = [pid for pid in sorted(query.relevant) if pid in index]
            if not known:
                data.skipped.append(f"{query.image}: no relevant product in the catalog")
                continue
            data.photos.append(Sample(_small(load_image(query.image)), index[known[0]], True))
            data.trained_photo_ids.append(query.query_id)
    return data


def _small(image: Image.Image, side: int = 256) -> Image.Image:
    """Cap the longest side: augmentation crops from this, and memory stays bounded."""
    image.draft("RGB", (side, side))
    if max(image.size) > side:
        image = image.copy()
        image.thumbnail((side, side), Image.Resampling.BICUBIC)
    return image


def epoch_batches(
    data: TrainingData, batch_size: int, photo_repeats: int, rng: random.Random
) -> Iterator[list[Sample]]:
    """One shuffled pass; every batch holds each product at most once.

    Unique products keep the contrastive loss honest: two images of one product in a batch
    would otherwise be each other's false negatives. A sample bumped for a duplicate goes to
    the front of the queue for the next batch.
    """
    pool: list[Sample] = list(data.catalog) + list(data.photos) * photo_repeats
    rng.shuffle(pool)
    pending = deque(pool)
    while pending:
        batch: list[Sample] = []
        seen: set[int] = set()
        bumped: list[Sample] = []
        while pending and len(batch) < batch_size:
            sample = pending.popleft()
            if sample.product in seen:
                bumped.append(sample)
            else:
                batch.append(sample)
                seen.add(sample.product)
        pending.extendleft(reversed(bumped))
        if len(batch) < max(2, batch_size // 4):
            return  # the tail is too small (or one product only) to contrast against
        yield batch
