"""Training on a table: its auto settings (the mlp's ensemble and linear member, batch size and
epochs from the train rows), the linear member fitted before the first epoch, its card."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchstages.data.store import load_table_split
from torchstages.errors import UserError
from torchstages.params.train import TrainParams
from torchstages.training.kind import KindTraining

__all__ = [
    "TABLE_ENSEMBLE",
    "TABLE_LINEAR_WEIGHT",
    "TableTraining",
    "table_batch_size",
    "table_epochs",
]

log = logging.getLogger(__name__)

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


class TableTraining(KindTraining):
    default_model = "mlp"
    # a table's val split is small (86 rows of breast_cancer): accuracy ties across epochs and
    # picks a worse one than the loss does on rows no selection saw (bench/RESULTS.md, "Tables":
    # the holdout search)
    monitor_loss = True

    def load(self, processed_dir: Path, split: str) -> tuple[np.ndarray, ...]:
        return load_table_split(processed_dir, split)

    def defaults(
        self, params: TrainParams, model: dict[str, Any] | None, meta: dict[str, Any]
    ) -> dict[str, Any]:
        """The mlp's ensemble size and linear weight; batch size and epochs from the train rows
        when they are at their defaults 64 and 30 and ``scale_to_rows`` is on (any other value
        is used as written)."""
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
                    "train: %d epochs for %d train rows (a table's default 30 shrinks beyond "
                    "4,096 rows to see 30 x 4,096 rows, at least 5 epochs)",
                    epochs,
                    rows,
                )
                update["epochs"] = epochs
                _check_schedule_fits(params, epochs, rows)
        return update

    def fit_before_training(
        self, model: nn.Module, meta: dict[str, Any], train: tuple[torch.Tensor, ...]
    ) -> None:
        """A table mlp's linear member (:mod:`torchstages.tables.linear`). It depends on the
        train rows only, so it is fitted before the first epoch: every val pass then scores the
        blend that is shipped, and the monitor picks the epoch whose shipped model is best."""
        if getattr(model, "linear", None) is None:
            return
        from torchstages.tables.linear import fit_linear_member

        mean, std = meta.get("target_mean", 0.0), meta.get("target_std", 1.0)
        fit_linear_member(model, *train, mean, std)

    def card(self, meta: dict[str, Any], params: TrainParams) -> dict[str, Any]:
        keys = ("kind", "task", "target", "classes", "target_mean", "target_std", "schema")
        # the batch size actually trained at: the default grows with the rows (defaults above)
        return {**{k: meta[k] for k in keys if k in meta}, "batch_size": params.batch_size}


def _check_schedule_fits(params: TrainParams, epochs: int, rows: int) -> None:
    """TrainParams checks the schedule against the epochs params.yaml writes; fewer epochs for
    a large table could leave a milestone or the end of the warmup beyond the last one."""
    if unreached := params.schedule.unreached(epochs):
        raise UserError(
            f"train.schedule.{unreached} would never come: {rows} train rows train {epochs} "
            "epochs (a table's default 30 shrinks with its rows): set train.epochs, or "
            "train.scale_to_rows: false"
        )
