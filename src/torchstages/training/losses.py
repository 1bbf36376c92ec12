"""The training loss. Models return logits; the loss applies (log-)softmax or sigmoid itself."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from torchstages.errors import UserError
from torchstages.params.train import TrainParams

__all__ = ["class_weights", "build_loss"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """sklearn's 'balanced' weights: n_samples / (n_classes × count of the class)."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double()
    return (len(labels) / (num_classes * counts.clamp(min=1))).float()


def build_loss(params: TrainParams, train_labels: torch.Tensor, num_classes: int) -> LossFn:
    weight = None
    if params.class_weights == "balanced":
        weight = class_weights(train_labels, num_classes).to(train_labels.device)
    if params.loss == "bce":
        if num_classes != 2:
            raise UserError(f"train.loss: bce needs exactly 2 classes, the data has {num_classes}")
        return lambda logits, y: _bce(logits, y, params.label_smoothing, weight)
    return lambda logits, y: F.cross_entropy(
        logits, y, weight=weight, label_smoothing=params.label_smoothing
    )


def _bce(logits: torch.Tensor, y: torch.Tensor, smoothing: float, weight: torch.Tensor | None):
    """BCE-with-logits of one logit, the margin between the two classes' logits: the binary
    recipe (one sigmoid output) on a two-logit network. The sigmoid of the margin is the softmax
    of the two logits, so the probabilities that validate, test, predict and serve report are
    the ones this loss trains (a sigmoid per logit would train each logit alone, and their
    softmax would be over-confident). Smoothed as cross_entropy smooths two classes."""
    margin = logits[:, 1] - logits[:, 0]
    target = y.to(logits.dtype) * (1 - smoothing) + smoothing / 2
    per_sample = F.binary_cross_entropy_with_logits(margin, target, reduction="none")
    if weight is not None:
        return (per_sample * weight[y]).sum() / weight[y].sum()
    return per_sample.mean()
