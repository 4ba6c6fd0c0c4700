"""The training loop: contrastive image→text loss (+ attribute heads, + the multi-view instance
loss), time-boxed, seeded."""

from __future__ import annotations

import logging
import math
import queue
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from app.embedding.bundle import Manifest
from app.embedding.export import ExportSpec, export_spec
from app.embedding.preprocess import resize_and_crop
from app.embedding.runtime import default_threads
from app.embedding.tokenizer import build_clip_tokenizer_json
from app.embedding.training.augment import snapshot, to_array
from app.embedding.training.data import TrainingData, epoch_batches, load_training_data
from app.embedding.training.losses import instance_supcon, text_contrastive
from app.embedding.training.model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DualEncoder,
    clip_reference_ids,
    minilm_dir,
    minilm_reference_ids,
)
from app.embedding.training.recipe import CHECKPOINT_FILE, Recipe

log = logging.getLogger(__name__)

# Progress callback: (step, total_steps, loss, elapsed_seconds).
ProgressFn = Callable[[int, int, float, float], None]  # step, total (0: not known yet), loss, s


@dataclass
class TrainReport:
    steps: int = 0
    seconds: float = 0.0
    train_seconds: float = 0.0
    images_per_s: float = 0.0
    losses: list[float] = field(default_factory=list)  # the weighted total, per step
    text_losses: list[float] = field(default_factory=list)  # image→text contrastive, per step
    instance_losses: list[float] = field(default_factory=list)  # SupCon; empty without the head
    manifest: Manifest | None = None

    def loss_drop(self, window: int = 10, losses: list[float] | None = None) -> tuple[float, float]:
        """Mean loss (``losses``, default the total) over the first and last ``window`` steps."""
        values = self.losses if losses is None else losses
        w = max(1, min(window, len(values) // 2))
        return float(np.mean(values[:w])), float(np.mean(values[-w:]))


class _Batches:
    """Augmented batches made on a background thread while the model trains on the last one.

    One producer thread owns the seeded RNG, so the sequence of batches is the same for a seed
    however fast the consumer is. The queue is small: memory stays bounded.
    """

    def __init__(self, data: TrainingData, recipe: Recipe, batch_size: int, rng: random.Random):
        self._queue: queue.Queue[tuple[torch.Tensor, torch.Tensor] | BaseException] = queue.Queue(
            maxsize=3
        )
        self._stop = threading.Event()
        self._args = (data, recipe, batch_size, rng)
        self._thread = threading.Thread(target=self._produce, daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        data, recipe, batch_size, rng = self._args
        catalog_of = {s.product: s for s in reversed(data.catalog)}  # a product's first image
        try:
            while not self._stop.is_set():
                for batch in epoch_batches(data, batch_size, recipe.photo_repeats, rng):
                    views = [snapshot(s.image, recipe.image_size, rng) for s in batch]
                    if recipe.instance_dim > 0:
                        # A second view per sample (view-major), the instance loss's positive:
                        # of the same catalog image, or for a shopper photo of its product's
                        # catalog image, so identity also holds across real re-photographs.
                        views += [
                            snapshot(catalog_of.get(s.product, s).image, recipe.image_size, rng)
                            if s.is_photo
                            else snapshot(s.image, recipe.image_size, rng)
                            for s in batch
                        ]
                    pixels = torch.from_numpy(to_array(views, IMAGENET_MEAN, IMAGENET_STD))
                    item = (
                        pixels.contiguous(memory_format=torch.channels_last),
                        torch.tensor([s.product for s in batch]),
                    )
                    while not self._stop.is_set():
                        try:
                            self._queue.put(item, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if self._stop.is_set():
                        return
        except BaseException as exc:  # surfaced in the training thread
            self._queue.put(exc)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _seed(seed: int) -> random.Random:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return random.Random(seed)


def _text_targets(model: DualEncoder, texts: list[str], recipe: Recipe) -> torch.Tensor:
    """Locked text tower: embed every product text once, before training."""
    ids = minilm_reference_ids(texts, recipe.context_length)
    # Sorting by length and cutting each chunk to its longest row skips the padding (the
    # tower masks padding, so the embeddings are unchanged): ~2x faster on short titles.
    lengths = (ids != 0).sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    out = torch.empty(len(texts), recipe.embed_dim)
    with torch.no_grad():
        for start in range(0, len(order), 128):
            rows = order[start : start + 128]
            chunk = torch.from_numpy(ids[rows, : int(lengths[rows].max())])
            out[torch.from_numpy(rows)] = F.normalize(model.encode_text(chunk), dim=-1)
    return out


def _clip_ids(texts: list[str], recipe: Recipe) -> torch.Tensor:
    return torch.from_numpy(clip_reference_ids(texts, recipe.context_length))


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _optimizer(model: DualEncoder, recipe: Recipe) -> torch.optim.Optimizer:
    backbone = [p for p in model.trunk.parameters() if p.requires_grad]
    backbone_ids = {id(p) for p in backbone}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in backbone_ids]
    return torch.optim.AdamW(
        [
            {"params": backbone, "lr": recipe.backbone_lr, "base_lr": recipe.backbone_lr},
            {"params": rest, "lr": recipe.lr, "base_lr": recipe.lr},
        ],
        weight_decay=recipe.weight_decay,
    )


def build_model(recipe: Recipe, data: TrainingData) -> DualEncoder:
    model = DualEncoder(recipe, {a: len(n) for a, n in data.label_names.items()})
    if recipe.init == "imagenet":
        model.load_imagenet()
    elif recipe.init != "scratch":
        state = torch.load(Path(recipe.init) / CHECKPOINT_FILE, map_location="cpu")
        if state.get("recipe", {}).get("text_tower") != recipe.text_tower:
            raise ValueError(f"{recipe.init} was trained with another text tower")
        # The category head depends on this catalog's labels: start it afresh.
        # So does an instance head of another size (or none: it starts afresh too).
        ours = model.state_dict()
        weights = {
            k: v
            for k, v in state["model"].items()
            if not k.startswith(("aux.", "gem_"))  # the GeM axes are refitted after training
            and not (k.startswith("instance.") and (k not in ours or ours[k].shape != v.shape))
        }
        model.load_state_dict(weights, strict=False)
    if recipe.frozen_stages > 0 and recipe.init != "scratch":
        model.freeze_early_stages(recipe.frozen_stages)
    return model


def train(
    recipe: Recipe,
    catalog_dir: Path,
    out: Path,
    extra_pairs: Path | None = None,
    progress: ProgressFn | None = None,
    overwrite: bool = False,
) -> TrainReport:
    """Train on the catalog (+ extra photos) and write a verified bundle to ``out``."""
    started = time.perf_counter()
    torch.set_num_threads(default_threads())
    rng = _seed(recipe.seed)
    data = load_training_data(catalog_dir, extra_pairs, recipe.seed)
    if len(data.catalog) < 2:
        raise ValueError(f"{catalog_dir}: need at least two readable product images to train")
    model = build_model(recipe, data)
    gem_images = _gem_sample(model, data, recipe)
    # The time budget covers loading and fitting the GeM axes too: the rest goes to the
    # optimiser.
    reserve = len(gem_images) / GEM_FIT_IMAGES_PER_S
    report = fit(
        model,
        data,
        recipe,
        rng,
        deadline=started + recipe.minutes * 60 - reserve,
        progress=progress,
    )
    if gem_images:
        t = time.perf_counter()
        model.fit_gem_projection(_gem_batches(gem_images, recipe))
        seconds = time.perf_counter() - t
        log.info("fitted the GeM axes on %d images in %.1fs", len(gem_images), seconds)
    report.manifest = _export(model, recipe, data, out, report, overwrite)
    report.seconds = time.perf_counter() - started
    return report


# Catalog images whose GeM features fix the instance vector's principal axes: more add little
# to a 256-d projection of 1280 features, and each costs a forward pass inside the time box.
GEM_FIT_IMAGES = 1500
GEM_FIT_IMAGES_PER_S = 40.0  # measured ~60/s on 2 cores; the reserve errs long


def _gem_sample(model: DualEncoder, data: TrainingData, recipe: Recipe) -> list[Any]:
    """The catalog images (a seeded sample) the GeM axes are fitted on; none without that part."""
    if model.instance is None or recipe.instance_gem_dim == 0:
        return []
    images = [s.image for s in data.catalog]
    if len(images) > GEM_FIT_IMAGES:
        images = random.Random(recipe.seed).sample(images, GEM_FIT_IMAGES)
    return images


def _gem_batches(images: list[Any], recipe: Recipe, batch: int = 64) -> list[torch.Tensor]:
    """Inference-preprocessed pixels (square resize and centre crop), batched."""
    return [
        torch.from_numpy(
            to_array(
                [resize_and_crop(im, recipe.image_size) for im in images[i : i + batch]],
                IMAGENET_MEAN,
                IMAGENET_STD,
            )
        ).contiguous(memory_format=torch.channels_last)
        for i in range(0, len(images), batch)
    ]


def fit(
    model: DualEncoder,
    data: TrainingData,
    recipe: Recipe,
    rng: random.Random,
    deadline: float | None = None,
    progress: ProgressFn | None = None,
) -> TrainReport:
    """Optimise ``model`` for ``recipe.steps`` steps, or until ``deadline`` (perf_counter)."""
    started = time.perf_counter()
    if deadline is None:
        deadline = started + recipe.minutes * 60
    labels = {attr: torch.tensor(values) for attr, values in data.labels.items()}
    # Category per product, for the instance loss's hard negatives (-1 = none known).
    category = labels.get("category", torch.full((len(data.product_ids),), -1))
    targets = _text_targets(model, data.texts, recipe) if recipe.text_tower == "minilm" else None
    clip_ids = _clip_ids(data.texts, recipe) if recipe.text_tower == "clip" else None
    optimizer = _optimizer(model, recipe)
    batch_size = min(recipe.batch_size, len(data.product_ids))

    report = TrainReport()
    total = recipe.steps or 10**9  # refined after the first steps when time-boxed
    images = 0
    # channels_last runs EfficientNet's convolutions ~1.5-2x faster on CPU.
    model.to(memory_format=torch.channels_last)
    model.train()
    batches = _Batches(data, recipe, batch_size, rng)
    loop_start = time.perf_counter()
    step = 0
    try:
        while step < total:
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * _lr_factor(step, total, recipe.warmup_steps)
            pixels, idx = batches.next()
            n = len(idx)
            all_emb, all_pooled = model.image_features(pixels)
            # The text and attribute losses see the first view; the instance loss sees all.
            emb, pooled = F.normalize(all_emb[:n], dim=-1), all_pooled[:n]
            if targets is not None:
                txt = targets[idx]
            else:
                assert clip_ids is not None
                txt = F.normalize(model.encode_text(clip_ids[idx]), dim=-1)
            text_loss = text_contrastive(emb, txt, model.logit_scale.exp().clamp(max=100))
            loss = text_loss
            for attr, head in model.aux.items():
                target = labels[attr][idx]
                if bool((target >= 0).any()):
                    loss = loss + recipe.category_weight * F.cross_entropy(
                        head(pooled), target, ignore_index=-1
                    )
            if model.instance is not None:
                views = len(all_pooled) // n
                inst_loss = instance_supcon(
                    model.instance(all_pooled),
                    idx.repeat(views),
                    category[idx].repeat(views),
                    recipe.instance_temperature,
                    recipe.instance_hard_weight,
                )
                loss = loss + recipe.instance_weight * inst_loss
                report.instance_losses.append(float(inst_loss.detach()))
            report.text_losses.append(float(text_loss.detach()))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            report.losses.append(float(loss.detach()))
            images += len(idx)
            step += 1
            if recipe.steps is None and step in (5, 30):
                # Fit the cosine schedule to the time left, measured on real steps (again
                # once warm, since the first steps run slower).
                per_step = (time.perf_counter() - loop_start) / step
                total = max(step + 1, int((deadline - time.perf_counter()) / per_step) + step)
            if progress is not None:
                # 0 = not known yet (time-boxed, before the step count is fitted at step 5).
                shown = total if recipe.steps or step >= 5 else 0
                progress(step, shown, report.losses[-1], time.perf_counter() - started)
            if recipe.steps is None and time.perf_counter() > deadline:
                break
    finally:
        batches.close()
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    report.steps = step
    report.train_seconds = time.perf_counter() - loop_start
    report.images_per_s = images / report.train_seconds if report.train_seconds > 0 else 0.0
    return report


def _export(
    model: DualEncoder,
    recipe: Recipe,
    data: TrainingData,
    out: Path,
    report: TrainReport,
    overwrite: bool,
) -> Manifest:
    parity_images = [s for s in data.catalog[:2]] + [s for s in data.photos[:2]]
    tmp_images = out.parent / f".{out.name}.parity"
    tmp_images.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, sample in enumerate(parity_images):
        path = tmp_images / f"{i}.png"
        sample.image.save(path)
        paths.append(path)
    if recipe.text_tower == "minilm":

        def write_tokenizer(path: Path) -> dict[str, Any]:
            shutil.copyfile(minilm_dir() / "tokenizer.json", path)
            return {"file": path.name, "kind": "wordpiece", "pad_id": 0, "vocab_size": 30522}

        def reference_ids(texts: Any) -> np.ndarray:
            return minilm_reference_ids(list(texts), recipe.context_length)

        start_end, vocab = (101, 102), 30522
    else:

        def write_tokenizer(path: Path) -> dict[str, Any]:
            return build_clip_tokenizer_json(path)

        def reference_ids(texts: Any) -> np.ndarray:
            return clip_reference_ids(list(texts), recipe.context_length)

        start_end, vocab = (49406, 49407), 49408
    name = f"snapshop-{recipe.image_arch}-{recipe.text_tower}"
    spec = ExportSpec(
        model=model,
        arch=name,
        pretrained=f"trained:{recipe.key()[:12]}",
        weights_source=(
            f"trained by snapshop on {len(data.product_ids)} products "
            f"({len(data.catalog)} catalog images, {len(data.photos)} extra photos); "
            f"image tower init {recipe.init}, text tower {recipe.text_tower}"
        ),
        image_size=recipe.image_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        resize="shortest",
        interpolation="bicubic",
        context_length=recipe.context_length,
        vocab_size=vocab,
        start_end_ids=start_end,
        write_tokenizer=write_tokenizer,
        reference_ids=reference_ids,
        extra={
            "training": {
                "recipe": recipe.to_dict(),
                "recipe_key": recipe.key(),
                "steps": report.steps,
                "train_seconds": round(report.train_seconds, 1),
                "images_per_s": round(report.images_per_s, 1),
                "loss_first": report.loss_drop()[0] if report.losses else None,
                "loss_last": report.loss_drop()[1] if report.losses else None,
                "instance_loss_first": (
                    report.loss_drop(losses=report.instance_losses)[0]
                    if report.instance_losses
                    else None
                ),
                "instance_loss_last": (
                    report.loss_drop(losses=report.instance_losses)[1]
                    if report.instance_losses
                    else None
                ),
                "trained_photo_ids": data.trained_photo_ids,
                "held_out_photo_ids": [q.query_id for q in data.held_out],
                "skipped": data.skipped[:50],
            }
        },
    )
    try:
        manifest = export_spec(spec, out, paths, overwrite=overwrite)
    finally:
        shutil.rmtree(tmp_images, ignore_errors=True)
    # Keep the trained torch weights beside the bundle so a later run can continue from it
    # (a locked MiniLM is left out: every run loads it from its package anyway).
    state = {
        k: v
        for k, v in model.state_dict().items()
        if not (recipe.text_tower == "minilm" and k.startswith("clip.text."))
    }
    torch.save({"model": state, "recipe": recipe.to_dict()}, out / CHECKPOINT_FILE)
    return manifest
