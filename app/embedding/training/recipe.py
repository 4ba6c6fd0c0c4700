"""The training recipe: every knob that changes the trained model, hashed for caching."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEXT_TOWERS = ("minilm", "clip")
INITS = ("imagenet", "scratch")
# Torch weights a trained bundle keeps beside its ONNX files, so training can continue from it.
CHECKPOINT_FILE = "train_state.pt"
# Bump when the training code changes what a recipe produces, so cached models are retrained.
# 3: the instance head and its multi-view loss; 4: + the GeM part; 5: its axes whitened
RECIPE_VERSION = 5


@dataclass(frozen=True)
class Recipe:
    text_tower: str = "minilm"
    image_arch: str = "tf_efficientnet_lite0"
    init: str = "imagenet"  # "imagenet", "scratch", or a bundle trained by snapshop to continue
    image_size: int = 160
    context_length: int = 48
    embed_dim: int = 384  # MiniLM's width; the image tower projects into it
    minutes: float = 8.0  # loading included; export adds ~30 s: under 10 min on 2 cores
    steps: int | None = None  # fixed step count (deterministic); None = fit the time budget
    batch_size: int = 64
    lr: float = 1e-3
    backbone_lr: float = 2e-4
    weight_decay: float = 0.05
    warmup_steps: int = 30
    frozen_stages: int = 4  # earliest EfficientNet stages kept frozen: generic edges, and speed
    category_head: bool = True
    category_weight: float = 0.3
    photo_repeats: int = 4  # each extra (shopper) photo is seen this many times per epoch
    # Instance head: a second image embedding trained for identity (0 = no head). Two views of
    # each image are positives, the batch's other products negatives (SupCon).
    instance_dim: int = 128
    instance_weight: float = 1.0
    instance_temperature: float = 0.1
    # Same-category negatives count this many times in the denominator: they are the near
    # look-alikes ("Men Blue Shirt") the instance vector must tell apart; costs nothing extra.
    instance_hard_weight: float = 2.0
    # The instance vector's GeM part (see DualEncoder): its width and its share of the cosine.
    instance_gem_dim: int = 512
    instance_gem_weight: float = 0.5
    # Each GeM axis is divided by its singular value to this power: 0 plain PCA, 1 full
    # whitening. Halfway evens out the few dominant axes (background, brightness) that swamp
    # the identity cues without blowing up the noisy last ones (Jégou & Chum, ECCV 2012).
    instance_gem_whiten: float = 0.5
    clip_text_width: int = 256
    clip_text_layers: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.text_tower not in TEXT_TOWERS:
            raise ValueError(f"text tower must be one of {', '.join(TEXT_TOWERS)}")
        if self.instance_dim < 0 or self.instance_weight < 0 or self.instance_temperature <= 0:
            raise ValueError("instance_dim and instance_weight must be >= 0, the temperature > 0")
        if self.instance_gem_dim < 0 or not 0 <= self.instance_gem_weight < 1:
            raise ValueError("instance_gem_dim must be >= 0 and instance_gem_weight in [0, 1)")
        if not 0 <= self.instance_gem_whiten <= 1:
            raise ValueError("instance_gem_whiten must be in [0, 1]")
        if self.minutes <= 0 and self.steps is None:
            raise ValueError("give a positive time budget or a step count")
        if self.init not in INITS and not (Path(self.init) / CHECKPOINT_FILE).is_file():
            raise ValueError(
                f"init must be {' or '.join(INITS)}, or a bundle trained by snapshop "
                f"(a folder with {CHECKPOINT_FILE}); got {self.init!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"recipe_version": RECIPE_VERSION, **dataclasses.asdict(self)}

    def key(self) -> str:
        """Stable hash of everything that shapes the model."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()
