"""Optimizer from the train params, with parameter groups for weight decay and transfer learning."""

from __future__ import annotations

import torch
from torch import nn

from torchstages.params.train import TrainParams

__all__ = ["build_optimizer"]


def build_optimizer(
    params: TrainParams,
    model: nn.Module,
    backbone: set[int] | None = None,
    backbone_lr_scale: float = 1.0,
) -> torch.optim.Optimizer:
    """The optimizer named in params.

    Weight decay skips biases and norm weights (1-d tensors): decaying them only hurts. Parameters
    whose id is in ``backbone`` get ``lr × backbone_lr_scale`` (fine-tuning a pretrained body more
    gently than a fresh head). All parameters are registered, frozen ones too, so unfreezing later
    needs no new optimizer.
    """
    backbone = backbone or set()
    groups = []
    for is_backbone in (False, True):
        for decays in (True, False):
            chosen = [
                p
                for p in model.parameters()
                if (id(p) in backbone) == is_backbone and (p.ndim > 1) == decays
            ]
            if chosen:
                scale = backbone_lr_scale if is_backbone else 1.0
                groups.append(
                    {
                        "params": chosen,
                        "lr": params.lr * scale,
                        "weight_decay": params.weight_decay if decays else 0.0,
                    }
                )
    if params.optimizer == "sgd":
        return torch.optim.SGD(
            groups,
            lr=params.lr,
            momentum=params.momentum,
            nesterov=params.nesterov and params.momentum > 0,
        )
    if params.optimizer == "adam":
        return torch.optim.Adam(groups, lr=params.lr)
    if params.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=params.lr)
    if params.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=params.lr, momentum=params.momentum)
    raise ValueError(f"unknown optimizer {params.optimizer!r}")  # params validation prevents this
