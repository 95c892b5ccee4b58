"""Losses of the heads, balanced so that rare classes (membranes, clefts, somata) count.

Tensors are (N, C, z, y, x). Sigmoid heads: binary cross-entropy on the logits, positives and
negatives of each channel weighted to half the loss each (within the mask), or, ``balanced=False``,
every voxel alike (calibrated probabilities: balancing makes a head predict its rare class
about as often as the common one, e.g. 4x too many cut affinities), or with a ``positive_weight``
w, positives counting w times (between the two: plain BCE on clefts that are 1-3% of a crop
stays at the all-negative solution, balanced marks 17% of the volume); softmax heads:
cross-entropy with classes weighted by inverse frequency in the batch; heads without an
activation (the direction vectors): smooth L1 where the mask is set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .targets import IGNORE


def balanced_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    dims = (0, 2, 3, 4)
    pos = (target * mask).sum(dims, keepdim=True)
    neg = ((1 - target) * mask).sum(dims, keepdim=True)
    w = mask * torch.where(target > 0.5, 0.5 / pos.clamp(min=1), 0.5 / neg.clamp(min=1))
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (w * loss).sum() / logits.shape[1]


def balanced_cross_entropy(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    n = logits.shape[1]
    valid = classes != IGNORE
    if not valid.any():
        return logits.sum() * 0
    counts = torch.bincount(classes[valid], minlength=n).float()
    weight = torch.where(
        counts > 0, counts.sum() / (counts.clamp(min=1) * (counts > 0).sum()), torch.zeros_like(counts)
    )
    return F.cross_entropy(logits, classes.clamp(min=0), weight=weight, ignore_index=-100, reduction="none")[
        valid
    ].sum() / weight[classes[valid]].sum().clamp(min=1e-6)


def masked_smooth_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (F.smooth_l1_loss(pred, target, reduction="none") * mask).sum() / mask.sum().clamp(min=1)


def masked_bce(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, positive_weight: float = 1.0
) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    w = mask * (1 + (positive_weight - 1) * target) if positive_weight != 1.0 else mask
    return (loss * w).sum() / mask.sum().clamp(min=1)


def head_loss(
    activation: str,
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    balanced: bool = True,
    positive_weight: float | None = None,
) -> torch.Tensor:
    """The loss of one head's slice of the network's logits (``positive_weight`` given: a
    sigmoid head's BCE with positives weighted by it instead of balanced)."""
    if activation == "sigmoid":
        if positive_weight is not None:
            return masked_bce(logits, target, mask, positive_weight)
        return balanced_bce(logits, target, mask) if balanced else masked_bce(logits, target, mask)
    if activation == "softmax":
        return balanced_cross_entropy(logits, target)
    return masked_smooth_l1(logits, target, mask)
