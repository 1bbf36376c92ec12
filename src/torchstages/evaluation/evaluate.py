"""The validate and test stages: evaluate the saved model on one split, write metrics and plots."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from torchstages.data.images import Preprocessing
from torchstages.data.loader import Normalizer
from torchstages.data.split import read_split
from torchstages.data.store import load_meta, load_split
from torchstages.device import resolve_device
from torchstages.evaluation.inference import predict_logits
from torchstages.evaluation.metrics import classification_metrics
from torchstages.evaluation.report import write_report
from torchstages.io import write_csv, write_json
from torchstages.models.saved import load_model
from torchstages.params.evaluate import EvaluateParams

__all__ = ["EvalPaths", "evaluate_split"]

log = logging.getLogger(__name__)


class EvalPaths:
    """Where one evaluation reads and writes; one instance per stage, built from ``paths``."""

    def __init__(
        self,
        processed: Path,
        splits: Path,
        weights: Path,
        card: Path,
        metrics: Path,
        plots_dir: Path,
        report: Path | None = None,
    ) -> None:
        self.processed, self.splits, self.weights, self.card = processed, splits, weights, card
        self.metrics, self.plots_dir, self.report = metrics, plots_dir, report


def evaluate_split(split: str, params: EvaluateParams, paths: EvalPaths) -> dict[str, Any]:
    """Evaluate once, in order, in eval mode; the metrics JSON and confusion rows are byte-stable."""
    device = resolve_device(params.device)
    model, card = load_model(paths.weights, paths.card)
    meta = load_meta(paths.processed)
    if meta["classes"] != card["classes"]:
        raise ValueError(f"{paths.card}: classes differ from {paths.processed}/meta.json")
    images, labels = load_split(paths.processed, split)
    prep = Preprocessing.from_dict(card["preprocessing"])
    logits = predict_logits(
        model.to(device), images, Normalizer(prep.mean, prep.std, device), params.batch_size, device
    )
    metrics = classification_metrics(logits, labels, card["classes"])
    write_json(paths.metrics, metrics)
    classes = card["classes"]
    predicted = logits.argmax(1).numpy()
    write_csv(
        paths.plots_dir / "confusion.csv",
        ["actual", "predicted"],
        [[classes[a], classes[p]] for a, p in zip(np.asarray(labels), predicted, strict=True)],
    )
    if paths.report is not None:
        rows = read_split(paths.splits / f"{split}.csv")
        write_report(paths.report, split, metrics, card, rows, np.asarray(labels), logits)
    log.info(
        "%s: loss %.4f  accuracy %.4f  f1_macro %.4f on %d samples -> %s",
        split,
        metrics["loss"],
        metrics["accuracy"],
        metrics["f1_macro"],
        metrics["samples"],
        paths.metrics,
    )
    return metrics
