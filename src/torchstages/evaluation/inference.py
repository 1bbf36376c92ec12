"""Logits for a whole split, in order, in eval mode: the only way evaluation runs a model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from torchstages.data.loader import BatchLoader, Normalizer, OnDevice, to_device_tensor

__all__ = ["predict_logits"]


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: np.ndarray | torch.Tensor | tuple[np.ndarray | torch.Tensor, ...],
    normalize: Normalizer | OnDevice,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """(N, outputs) float32 model outputs on the CPU, rows in the order of the inputs.

    ``images`` is one input array, or a tuple of arrays the model takes as separate arguments (a
    table's numeric and categorical columns). Switches the model to eval mode for the call (and
    back), so forgetting ``model.eval()`` cannot leak dropout or batch statistics into a metric.
    """
    several = isinstance(images, tuple)
    inputs = tuple(
        to_device_tensor(a, device) if isinstance(a, np.ndarray) else a
        for a in (images if several else (images,))
    )
    labels = torch.zeros(len(inputs[0]), dtype=torch.long, device=inputs[0].device)
    was_training = model.training
    model.eval()
    try:
        loader = BatchLoader(inputs if several else inputs[0], labels, batch_size, normalize)
        outs = [(model(*x) if several else model(x)).float().cpu() for x, _ in loader]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)
