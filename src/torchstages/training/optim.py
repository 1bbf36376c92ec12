"""Optimizer and learning-rate schedule from the train params."""

from __future__ import annotations

import math

import torch
from torch import nn

from torchstages.params.train import TrainParams

__all__ = ["build_optimizer", "build_scheduler"]


def build_optimizer(params: TrainParams, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer named in params; weight decay skips biases and norm weights (1-d tensors)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": params.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if params.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=params.lr, momentum=params.momentum)
    if params.optimizer == "adam":
        return torch.optim.Adam(groups, lr=params.lr)
    if params.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=params.lr)
    if params.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=params.lr, momentum=params.momentum)
    raise ValueError(f"unknown optimizer {params.optimizer!r}")  # params validation prevents this


def build_scheduler(
    params: TrainParams, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedule: constant, or cosine decay from ``lr`` to 0 over all steps."""
    total = params.epochs * steps_per_epoch
    if params.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
