"""Logits for a whole split, in order, in eval mode: the only way evaluation runs a model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from torchstages.data.loader import BatchLoader, Normalizer, to_device_tensor

__all__ = ["predict_logits"]


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    normalize: Normalizer,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """(N, classes) float32 logits on the CPU, rows in the order of ``images``.

    Switches the model to eval mode for the call (and back), so forgetting ``model.eval()``
    cannot leak dropout or batch statistics into a reported metric.
    """
    if isinstance(images, np.ndarray):
        images = to_device_tensor(images, device)
    labels = torch.zeros(len(images), dtype=torch.long, device=images.device)
    was_training = model.training
    model.eval()
    try:
        outs = [
            model(x).float().cpu() for x, _ in BatchLoader(images, labels, batch_size, normalize)
        ]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)
