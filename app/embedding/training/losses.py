"""The training losses: image→text contrastive (CLIP/LiT) and multi-view instance (SupCon)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def text_contrastive(emb: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised image and text rows (row i matches row i)."""
    logits = scale * emb @ txt.T
    arange = torch.arange(len(emb))
    return (F.cross_entropy(logits, arange) + F.cross_entropy(logits.T, arange)) / 2


def instance_supcon(
    inst: torch.Tensor,
    products: torch.Tensor,
    categories: torch.Tensor,
    temperature: float,
    hard_weight: float = 1.0,
) -> torch.Tensor:
    """Supervised contrastive loss over several views per image (Khosla et al., 2020).

    ``inst``: (V*B, d) un-normalised instance embeddings, views stacked view-major;
    ``products``/``categories``: (V*B,) labels per row (category -1 = unknown). Rows of the same
    product are positives, every other row a negative; negatives of the same category are
    counted ``hard_weight`` times in the softmax's denominator (a log-weight on their logits),
    which focuses the loss on the look-alikes that plain random negatives rarely supply.
    """
    z = F.normalize(inst, dim=-1)
    logits = z @ z.T / temperature
    n = len(z)
    self_mask = torch.eye(n, dtype=torch.bool)
    same_product = products[:, None] == products[None, :]
    positives = same_product & ~self_mask
    if hard_weight != 1.0:
        same_cat = (categories[:, None] == categories[None, :]) & (categories[:, None] >= 0)
        hard = same_cat & ~same_product
        logits = logits + hard.to(logits.dtype) * math.log(hard_weight)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    counts = positives.sum(dim=1)
    keep = counts > 0  # an anchor without another view of its product has nothing to pull
    if not bool(keep.any()):
        return inst.sum() * 0.0
    pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(dim=1)
    return -(pos_log_prob[keep] / counts[keep]).mean()
