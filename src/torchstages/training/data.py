"""What the training loop trains on, for each data kind: the split tensors, how a batch is
prepared on the device, how the network is built for these inputs, and what the model card
records. The loop itself only sees tuples of input tensors and targets.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchstages.data.augment import random_affine
from torchstages.data.images import Preprocessing
from torchstages.data.loader import Normalizer, OnDevice, to_device_tensor
from torchstages.data.store import load_meta, load_series_split, load_split, load_table_split
from torchstages.errors import UserError
from torchstages.kinds import kind_of
from torchstages.models import build_network
from torchstages.models.recurrent import RecurrentSpec
from torchstages.params.train import TrainParams
from torchstages.training import distributed
from torchstages.training.tasks import Task, build_task

__all__ = [
    "TABLE_ENSEMBLE",
    "TABLE_LINEAR_WEIGHT",
    "TrainData",
    "check_network",
    "load_train_data",
    "params_for_kind",
    "table_batch_size",
    "table_epochs",
]

log = logging.getLogger(__name__)


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

    @property
    def classes(self) -> list[str]:
        return self.meta.get("classes", [])

    def build(self, params: TrainParams) -> nn.Module:
        """The network for these inputs, its output shape checked on a dummy batch."""
        model = build_network(self.meta, params.model, self.task.outputs, vocab=self.vocab)
        if self.kind == "text":
            self.vectors_found = getattr(model, "vectors_found", None)
        return model

    def fit_before_training(self, model: nn.Module) -> None:
        """Fit what the optimizer does not train: a table mlp's linear member
        (:mod:`torchstages.tables.linear`). It depends on the train rows only, so it is fitted
        before the first epoch: every val pass then scores the blend that is shipped, and the
        monitor picks the epoch whose shipped model is best."""
        if self.kind != "table" or getattr(model, "linear", None) is None:
            return
        from torchstages.tables.linear import fit_linear_member

        mean, std = self.meta.get("target_mean", 0.0), self.meta.get("target_std", 1.0)
        fit_linear_member(model, *self.train_x, self.train_y, mean, std)

    def augmenter(self, params: TrainParams, generator: torch.Generator):
        if self.kind != "images":
            return None
        return lambda x: random_affine(x, params.augment, generator)

    def card(self, params: TrainParams) -> dict[str, Any]:
        """What the model card records about the data (with the kind's own keys)."""
        if self.kind == "table":
            keys = ("kind", "task", "target", "classes", "target_mean", "target_std", "schema")
            # the batch size actually trained at: the default grows with the rows (params_for_kind)
            return {
                **{k: self.meta[k] for k in keys if k in self.meta},
                "batch_size": params.batch_size,
            }
        if self.kind == "series":
            # everything evaluation, export and predict need: scaling, windows, frequency
            return {k: v for k, v in self.meta.items() if k not in ("counts", "stride", "file")}
        if self.kind == "text":
            keys = ("kind", "task", "target", "classes", "text_column", "tokenizer")
            keys += ("encoding", "quoting")
            card = {k: self.meta[k] for k in (*keys, "vocab_size", "max_len")}
            if self.vectors_found is not None:
                card["vectors_found"] = self.vectors_found
            return card
        return {
            "classes": self.classes,
            "preprocessing": self.prep.to_dict(),
            # what the augmentation picture (drawn by validate) needs to show what the model saw
            "augment": params.augment.model_dump(mode="json"),
        }

    @property
    def prep(self) -> Preprocessing:
        return Preprocessing.from_dict(self.meta["preprocessing"])


# a table mlp's members when train.model.ensemble is 0 (auto): picked on val across the five
# tables of bench/tables_val.py (bench/RESULTS.md, "Tables")
TABLE_ENSEMBLE = 8
# a table mlp's linear_weight when auto: picked on holdouts carved from train + val across the
# five tables of bench/tables_val.py (bench/RESULTS.md, "Tables": the linear member)
TABLE_LINEAR_WEIGHT = 0.25


def table_batch_size(train_rows: int, nproc: int = 1) -> int:
    """The batch size of a table whose ``train.batch_size`` is left at its default (64): the
    largest power of two that still gives 128 steps per epoch, between 64 and 1024, rounded down
    to a multiple of ``nproc``. Small tables keep 64 (below 16,384 train rows); 35,000 rows
    train at 256, where batch 64's per-step overhead, not arithmetic, bounded the speed."""
    size = 64
    while size < 1024 and train_rows >= 2 * size * 128:
        size *= 2
    return max(nproc, size - size % nproc)


def table_epochs(train_rows: int) -> int:
    """The epochs of a table whose ``train.epochs`` is left at its default (30): 30 up to 4,096
    train rows; a larger table sees as many rows (30 x 4,096), in at least 5 epochs. An epoch of
    a large table is many optimizer steps: on 35,000 train rows the ensemble peaked by epoch 6 of
    30, and 5 epochs scored within 0.3 points of val accuracy of 8 (bench/RESULTS.md)."""
    return max(5, min(30, math.ceil(30 * 4096 / max(train_rows, 1))))


# images: TrainParams' own default (cnn); series: mlp, picked on the validation ranges of
# bench/series.py (bench/RESULTS.md)
_DEFAULT_MODEL = {"table": "mlp", "text": "textcnn", "series": "mlp"}


def params_for_kind(params: TrainParams, meta: dict[str, Any]) -> TrainParams:
    """Fill what the user left unset or auto with the kind's and task's defaults (a table or
    series: mlp; texts: textcnn; one CPU thread for threads: 0 except for images; a series: fp32;
    a regression or forecast: mse loss; best epoch by val_loss for tables, regressions and
    forecasts, by val_accuracy otherwise); a setting that cannot apply is an error."""
    update: dict[str, Any] = {}
    unset = params.model_fields_set
    kind = kind_of(meta)
    if "model" not in unset and kind in _DEFAULT_MODEL:
        update["model"] = {"name": _DEFAULT_MODEL[kind]}
    if kind == "table":
        update.update(_table_defaults(params, update.get("model"), meta))
    if kind in ("text", "series") and isinstance(params.model, RecurrentSpec):
        # the card records the sizes trained, not "unset" (hidden: 32 for texts, 64 for series)
        filled = params.model.for_texts() if kind == "text" else params.model.for_series()
        update["model"] = filled.model_dump(mode="json")
    if kind != "images" and params.threads == 0:
        # table, text and series models have layers too small to split across threads: one
        # thread trains faster, by far when other jobs share the CPU and the threads' waits
        # contend (bench/RESULTS.md: "Tables", "Texts")
        update["threads"] = 1
    if kind == "series" and params.precision == "auto":
        # bf16 keeps 3 significant digits: too coarse for forecasts, and these small networks
        # gain no speed from it
        update["precision"] = "fp32"
    values = meta.get("task") in ("regression", "forecast")
    if params.loss == "auto":
        update["loss"] = "mse" if values else "cross_entropy"
    if params.monitor == "auto":
        # a table's val split is small (86 rows of breast_cancer): accuracy ties across epochs
        # and picks a worse one than the loss does on rows no selection saw (bench/RESULTS.md,
        # "Tables": the holdout search)
        update["monitor"] = "val_loss" if values or kind == "table" else "val_accuracy"
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


def _table_defaults(
    params: TrainParams, model: dict[str, Any] | None, meta: dict[str, Any]
) -> dict[str, Any]:
    """A table's auto settings: the mlp's ensemble size and linear weight; batch size and epochs
    from the train rows when they are at their defaults 64 and 30 and ``scale_to_rows`` is on
    (any other value is used as written)."""
    update: dict[str, Any] = {}
    spec = model or params.model.model_dump(mode="json")
    if spec["name"] == "mlp":
        auto = {"ensemble": TABLE_ENSEMBLE} if not spec.get("ensemble") else {}
        if spec.get("linear_weight", "auto") == "auto":
            auto["linear_weight"] = TABLE_LINEAR_WEIGHT
        if auto:
            update["model"] = {**spec, **auto}
    rows = meta.get("counts", {}).get("train", 0)
    if not params.scale_to_rows or not rows:
        return update
    defaults = TrainParams.model_fields
    if params.batch_size == defaults["batch_size"].default:
        size = table_batch_size(rows, params.nproc_per_node)
        if size != params.batch_size:
            log.info(
                "train: batch_size %d for %d train rows (a table's default 64 grows to the "
                "largest power of two giving 128 steps per epoch, at most 1024)",
                size,
                rows,
            )
            update["batch_size"] = size
    if params.epochs == defaults["epochs"].default:
        epochs = table_epochs(rows)
        if epochs != params.epochs:
            log.info(
                "train: %d epochs for %d train rows (a table's default 30 shrinks beyond 4,096 "
                "rows to see 30 x 4,096 rows, at least 5 epochs)",
                epochs,
                rows,
            )
            update["epochs"] = epochs
            _check_schedule_fits(params, epochs, rows)
    return update


def _check_schedule_fits(params: TrainParams, epochs: int, rows: int) -> None:
    """TrainParams checks the schedule against the epochs params.yaml writes; fewer epochs for
    a large table could leave a milestone or the end of the warmup beyond the last one."""
    if unreached := params.schedule.unreached(epochs):
        raise UserError(
            f"train.schedule.{unreached} would never come: {rows} train rows train {epochs} "
            "epochs (a table's default 30 shrinks with its rows): set train.epochs, or "
            "train.scale_to_rows: false"
        )


def check_network(processed_dir: Path, params: TrainParams) -> TrainParams:
    """Build the network for the processed data as train will, reading of the data only what
    that needs (the classes' counts, a text vocabulary), not the inputs themselves; the params
    as train resolves them for the kind (a table's batch size from its rows)."""
    meta = load_meta(processed_dir)
    params = params_for_kind(params, meta)
    labels = np.zeros(0, dtype=np.int64)
    if meta.get("task", "classification") == "classification":
        labels = np.load(processed_dir / "train_labels.npy")
    vocab = None
    if kind_of(meta) == "text":
        from torchstages.text.store import load_vocab

        vocab = load_vocab(processed_dir)
    outputs = build_task(params, meta, torch.from_numpy(labels)).outputs
    build_network(meta, params.model, outputs, vocab=vocab)
    return params


def load_train_data(
    processed_dir: Path, device: torch.device, params: TrainParams, dist: distributed.Dist
) -> TrainData:
    meta = load_meta(processed_dir)
    vocab = None
    if kind_of(meta) == "text":
        from torchstages.text.store import load_text_split, load_vocab

        train = load_text_split(processed_dir, "train")
        val = load_text_split(processed_dir, "val")
        normalize: Normalizer | OnDevice = OnDevice(device)
        vocab = load_vocab(processed_dir)
    elif kind_of(meta) == "table":
        train = load_table_split(processed_dir, "train")
        val = load_table_split(processed_dir, "val")
        normalize = OnDevice(device)
    elif kind_of(meta) == "series":
        train = load_series_split(processed_dir, "train")
        val = load_series_split(processed_dir, "val")
        normalize = OnDevice(device)
    else:
        train = load_split(processed_dir, "train")
        val = load_split(processed_dir, "val")
        prep = Preprocessing.from_dict(meta["preprocessing"])
        normalize = Normalizer(prep.mean, prep.std, device)
    train_x = tuple(to_device_tensor(a, device) for a in train[:-1])
    train_y = to_device_tensor(train[-1], device)
    # each process validates its own slice; the sums are reduced across processes
    part = slice(dist.rank, None, dist.world_size)
    val_x = tuple(to_device_tensor(np.asarray(a[part]), device) for a in val[:-1])
    val_y = to_device_tensor(np.asarray(val[-1][part]), device)
    task = build_task(params, meta, train_y)
    return TrainData(meta, task, normalize, train_x, train_y, val_x, val_y, vocab)
