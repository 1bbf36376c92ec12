"""Which epoch was best, and when to stop: small state machines that checkpoint as plain dicts."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from torchstages.params.train import EarlyStoppingParams

__all__ = ["BestWeights", "EarlyStopping"]


class BestWeights:
    """Keeps a CPU copy of the weights of the best epoch by ``monitor``.

    Accuracy ties (common on small val sets) are broken by the lower loss, so a lucky early epoch
    does not win over a converged one.
    """

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.key: list[float] | None = None
        self.epoch, self.value = -1, float("nan")
        self.state: dict[str, torch.Tensor] = {}

    def update(self, epoch: int, val_loss: float, val_accuracy: float, model: nn.Module) -> bool:
        key = [val_loss] if self.monitor == "val_loss" else [-val_accuracy, val_loss]
        if self.key is not None and key >= self.key:
            return False
        self.key, self.epoch = key, epoch
        self.value = val_loss if self.monitor == "val_loss" else val_accuracy
        self.state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"key": self.key, "epoch": self.epoch, "value": self.value, "state": self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.key, self.epoch, self.value = state["key"], state["epoch"], state["value"]
        self.state = state["state"]


class EarlyStopping:
    """Stop after ``patience`` epochs in which the monitored metric did not improve by ``min_delta``
    (before the last of ``epochs``: a run that reaches it ran its course, it did not stop early)."""

    def __init__(self, params: EarlyStoppingParams, epochs: int) -> None:
        self.params = params
        self.epochs = epochs
        mode = params.mode
        if mode == "auto":
            mode = "min" if params.monitor.endswith("loss") else "max"
        self.sign = 1.0 if mode == "min" else -1.0  # compare sign × value: lower is better
        self.best = float("inf")
        self.bad_epochs = 0
        self.stopped_epoch: int | None = None

    def update(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Record this epoch; True when training should stop now."""
        if not self.params.patience:
            return False
        value = self.sign * metrics[self.params.monitor]
        if value < self.best - self.params.min_delta:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs >= self.params.patience and epoch + 1 < self.epochs:
            self.stopped_epoch = epoch
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad_epochs, "stopped": self.stopped_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs, self.stopped_epoch = (
            state["best"],
            state["bad"],
            state["stopped"],
        )
