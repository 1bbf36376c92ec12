"""What the training loop trains on: the split tensors, how a batch is prepared on the device, the
network built for these inputs, and what the model card records, each asked of the data's kind
(:class:`torchstages.training.kind.KindTraining`). The loop itself only sees tuples of input
tensors and targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchstages.data.loader import Normalizer, OnDevice, to_device_tensor
from torchstages.data.store import load_meta
from torchstages.data.training import ImageTraining
from torchstages.errors import UserError
from torchstages.kinds import kind_of
from torchstages.models import build_network
from torchstages.params.train import AugmentParams, TrainParams
from torchstages.series.training import SeriesTraining
from torchstages.tables.training import TableTraining
from torchstages.text.training import TextTraining
from torchstages.training import distributed
from torchstages.training.kind import KindTraining
from torchstages.training.tasks import Task, build_task

__all__ = ["TrainData", "check_network", "kind_training", "load_train_data", "params_for_kind"]

_KINDS: dict[str, KindTraining] = {
    "images": ImageTraining(),
    "table": TableTraining(),
    "text": TextTraining(),
    "series": SeriesTraining(),
}


def kind_training(meta: dict[str, Any]) -> KindTraining:
    """What training needs to know of the kind a ``meta.json`` records."""
    return _KINDS[kind_of(meta)]


@dataclass
class TrainData:
    meta: dict[str, Any]
    task: Task
    normalize: Normalizer | OnDevice
    train_x: tuple[torch.Tensor, ...]
    train_y: torch.Tensor
    val_x: tuple[torch.Tensor, ...]
    val_y: torch.Tensor
    vocab: list[str] | None = None  # texts: the tokens in id order (for pretrained vectors)
    vectors_found: dict[str, int] | None = None  # texts: vocabulary words the vectors file had

    @property
    def kind(self) -> str:
        return kind_of(self.meta)

    def build(self, params: TrainParams) -> nn.Module:
        """The network for these inputs, its output shape checked on a dummy batch."""
        model = build_network(self.meta, params.model, self.task.outputs, vocab=self.vocab)
        self.vectors_found = getattr(model, "vectors_found", None)
        return model

    def fit_before_training(self, model: nn.Module) -> None:
        """Fit what the optimizer does not train (a table mlp's linear member)."""
        kind_training(self.meta).fit_before_training(
            model, self.meta, (*self.train_x, self.train_y)
        )

    def augmenter(self, params: TrainParams, seed: int):
        return kind_training(self.meta).augmenter(params, seed)

    def mixer(self, params: TrainParams, seed: int):
        return kind_training(self.meta).mixer(params, seed)

    def card(self, params: TrainParams) -> dict[str, Any]:
        """What the model card records about the data (with the kind's own keys)."""
        card = kind_training(self.meta).card(self.meta, params)
        if self.vectors_found is not None:
            card["vectors_found"] = self.vectors_found
        return card


def params_for_kind(params: TrainParams, meta: dict[str, Any]) -> TrainParams:
    """Fill what the user left unset or auto with the kind's defaults (its model, one CPU thread
    for threads: 0 except for images, a table's sizes from its rows, a series in fp32) and the
    task's (a regression or forecast: mse loss; best epoch by val_loss for regressions, forecasts
    and tables, by val_accuracy otherwise); a setting that cannot apply is an error."""
    update: dict[str, Any] = {}
    kind = kind_training(meta)
    if "model" not in params.model_fields_set and kind.default_model:
        update["model"] = {"name": kind.default_model}
    update.update(kind.defaults(params, update.get("model"), meta))
    if not kind.augments and (on := params.augment.later_settings_on()):
        default = AugmentParams.model_fields[on[0]].default
        raise UserError(
            f"train.augment.{on[0]}: augments images; {kind_of(meta)} data is not augmented "
            f"(set it to {list(default) if isinstance(default, tuple) else default})"
        )
    if kind.one_thread and params.threads == 0:
        update["threads"] = 1
    values = meta.get("task") in ("regression", "forecast")
    if params.loss == "auto":
        update["loss"] = "mse" if values else "cross_entropy"
    if params.monitor == "auto":
        update["monitor"] = "val_loss" if values or kind.monitor_loss else "val_accuracy"
    if values:
        what = "a forecast" if meta.get("task") == "forecast" else "a regression"
        # as a model key of another kind is refused: set, it would be silently ignored
        if params.label_smoothing:
            raise UserError(f"train.label_smoothing: smooths class labels; {what} has none (0)")
        if params.class_weights != "none":
            raise UserError(f"train.class_weights: weights classes; {what} has none (none)")
        if params.monitor == "val_accuracy":
            raise UserError(f"train.monitor: val_accuracy needs classes; {what} uses val_loss")
        if params.early_stopping.patience and params.early_stopping.monitor == "val_accuracy":
            raise UserError(
                f"train.early_stopping.monitor: val_accuracy needs classes; {what} uses val_loss"
            )
    if not update:
        return params
    return TrainParams.model_validate({**params.model_dump(mode="json"), **update})


def check_network(processed_dir: Path, params: TrainParams) -> TrainParams:
    """Build the network for the processed data as train will, reading of the data only what
    that needs (the classes' counts, a text vocabulary), not the inputs themselves; the params
    as train resolves them for the kind (a table's batch size from its rows)."""
    meta = load_meta(processed_dir)
    params = params_for_kind(params, meta)
    labels = np.zeros(0, dtype=np.int64)
    if meta.get("task", "classification") == "classification":
        labels = np.load(processed_dir / "train_labels.npy")
    vocab = kind_training(meta).vocab(processed_dir)
    outputs = build_task(params, meta, torch.from_numpy(labels)).outputs
    build_network(meta, params.model, outputs, vocab=vocab)
    return params


def load_train_data(
    processed_dir: Path, device: torch.device, params: TrainParams, dist: distributed.Dist
) -> TrainData:
    meta = load_meta(processed_dir)
    kind = kind_training(meta)
    train, val = kind.load(processed_dir, "train"), kind.load(processed_dir, "val")
    train_x = tuple(to_device_tensor(a, device) for a in train[:-1])
    train_y = to_device_tensor(train[-1], device)
    # each process validates its own slice; the sums are reduced across processes
    part = slice(dist.rank, None, dist.world_size)
    val_x = tuple(to_device_tensor(np.asarray(a[part]), device) for a in val[:-1])
    val_y = to_device_tensor(np.asarray(val[-1][part]), device)
    task = build_task(params, meta, train_y)
    normalize = kind.normalizer(meta, device)
    vocab = kind.vocab(processed_dir)
    return TrainData(meta, task, normalize, train_x, train_y, val_x, val_y, vocab)
