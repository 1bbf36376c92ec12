"""What is learned: classification (logits, cross-entropy, accuracy) or regression (one value,
a regression loss on train-standardised targets, RMSE in the target's own units).

The loop asks the task for the loss, the per-batch score it sums, and the validation numbers;
it never asks which one it has.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from torchstages.errors import UserError
from torchstages.params.train import TrainParams
from torchstages.training.losses import build_loss

__all__ = ["Task", "Classification", "Regression", "Forecast", "build_task"]

_REGRESSION_LOSSES = ("mse", "mae", "huber", "smooth_l1")


def _value_loss(params: TrainParams, what: str) -> Callable[..., torch.Tensor]:
    """The regression loss named by ``train.loss`` (``reduction`` as in torch.nn.functional)."""
    if params.loss not in _REGRESSION_LOSSES:
        raise UserError(
            f"train.loss: {params.loss} is a classification loss; {what} needs one of "
            f"{', '.join(_REGRESSION_LOSSES)}"
        )
    delta = params.huber_delta
    return {
        "mse": F.mse_loss,
        "mae": F.l1_loss,
        "huber": lambda a, b, reduction="mean": F.huber_loss(
            a, b, reduction=reduction, delta=delta
        ),
        "smooth_l1": lambda a, b, reduction="mean": F.smooth_l1_loss(
            a, b, reduction=reduction, beta=delta
        ),
    }[params.loss]


class Task:
    name: str
    metric: str  # logged as train/<metric> and val/<metric>
    outputs: int
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def score_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A batch's contribution to the metric, summed over its samples (stays on the device)."""
        raise NotImplementedError

    def metric_from_sum(self, total: torch.Tensor, samples: torch.Tensor) -> float:
        raise NotImplementedError

    def validation(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """[summed loss, summed score] of a validation slice, for an all-reduce across processes."""
        raise NotImplementedError


class Classification(Task):
    name, metric = "classification", "accuracy"

    def __init__(self, params: TrainParams, train_y: torch.Tensor, num_classes: int) -> None:
        if params.loss in _REGRESSION_LOSSES:
            raise UserError(
                f"train.loss: {params.loss} is a regression loss; classes need cross_entropy or bce"
            )
        self.outputs = num_classes
        self.loss = build_loss(params, train_y, num_classes)

    def score_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (out.argmax(1) == y).sum()

    def metric_from_sum(self, total: torch.Tensor, samples: torch.Tensor) -> float:
        return (total / samples).item()

    def validation(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # plain cross-entropy, whatever the training loss: comparable across runs
        return torch.tensor(
            [F.cross_entropy(out, y, reduction="sum").item(), (out.argmax(1) == y).sum().item()]
        )


class Regression(Task):
    """The network predicts (y - mean) / std of the train targets: every target scale trains alike."""

    name, metric, outputs = "regression", "rmse", 1

    def __init__(self, params: TrainParams, mean: float, std: float) -> None:
        self.mean, self.std = mean, std
        fn = _value_loss(params, "a regression table")
        self.loss = lambda out, y: fn(out[:, 0].float(), (y - self.mean) / self.std)

    def score_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((out[:, 0].float() * self.std + self.mean - y) ** 2).sum()

    def metric_from_sum(self, total: torch.Tensor, samples: torch.Tensor) -> float:
        return torch.sqrt(total / samples).item()

    def validation(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # squared error of the standardised values, whatever the training loss: comparable
        # across runs, and the loss validate and test report
        standardized = (y - self.mean) / self.std
        return torch.tensor(
            [
                F.mse_loss(out[:, 0].float(), standardized, reduction="sum").item(),
                self.score_sum(out, y).item(),
            ]
        )


class Forecast(Task):
    """The network predicts ``horizon`` scaled values per window (build-dataset scaled them with
    train-range statistics); the metric is their mean absolute error in scaled units, which
    validate and test turn into errors in the series' own units."""

    name, metric = "forecast", "mae"

    def __init__(self, params: TrainParams, horizon: int) -> None:
        self.outputs = horizon
        fn = _value_loss(params, "a forecast")
        self.loss = lambda out, y: fn(out.float(), y)

    def score_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (out.float() - y).abs().mean(1).sum()

    def metric_from_sum(self, total: torch.Tensor, samples: torch.Tensor) -> float:
        return (total / samples).item()

    def validation(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # squared error of the scaled values, whatever the training loss (as for a regression):
        # the mean over the horizon per window, summed over windows
        per_window = ((out.float() - y) ** 2).mean(1).sum()
        return torch.tensor([per_window.item(), self.score_sum(out, y).item()])


def build_task(params: TrainParams, meta: dict, train_y: torch.Tensor) -> Task:
    """The task recorded by build-dataset in ``meta.json`` (images: classification)."""
    if meta.get("task") == "forecast":
        return Forecast(params, meta["horizon"])
    if meta.get("task", "classification") == "regression":
        return Regression(params, meta["target_mean"], meta["target_std"])
    return Classification(params, train_y, len(meta["classes"]))
