"""The CSV files behind ``dvc plots``: confusion rows, per-class scores, ROC/PR curves, mistakes.

Every number is rounded to six decimals and rows come in a fixed order, so an unchanged model
writes the same bytes and ``dvc plots diff`` shows only real changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from torchstages.data.discover import Row
from torchstages.io import six_decimals, write_csv

__all__ = ["curve_rows", "mistake_order", "write_plot_data"]


def write_plot_data(
    out_dir: Path,
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    metrics: dict[str, Any],
    rows: list[Row],
    named_by: str = "file",
) -> None:
    """confusion.csv, per_class.csv, roc.csv, pr.csv and mistakes.csv (its first column, headed
    ``named_by``, names each wrong sample) under ``out_dir``."""
    predicted = probs.argmax(1)
    write_csv(
        out_dir / "confusion.csv",
        ["actual", "predicted"],
        [[classes[a], classes[p]] for a, p in zip(labels, predicted, strict=True)],
    )
    write_csv(
        out_dir / "per_class.csv",
        ["class", "precision", "recall", "f1", "support"],
        [
            [name, m["precision"], m["recall"], m["f1"], m["support"]]
            for name, m in metrics["per_class"].items()
        ],
    )
    roc, pr = curve_rows(probs, labels)
    write_csv(out_dir / "roc.csv", ["fpr", "tpr"], roc)
    write_csv(out_dir / "pr.csv", ["recall", "precision"], pr)
    confidence = probs.max(1)
    write_csv(
        out_dir / "mistakes.csv",
        [named_by, "actual", "predicted", "probability"],
        [
            [
                rows[i].path,
                classes[labels[i]],
                classes[predicted[i]],
                six_decimals(confidence[i]),
            ]
            for i in mistake_order(probs, labels)
        ],
    )


def mistake_order(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices of the wrongly classified samples, most confident first (ties in split order)."""
    wrong = np.flatnonzero(probs.argmax(1) != labels)
    return wrong[np.argsort(-probs.max(1)[wrong], kind="stable")]


def curve_rows(
    probs: np.ndarray, labels: np.ndarray
) -> tuple[list[list[float]], list[list[float]]]:
    """ROC (fpr, tpr) and precision-recall (recall, precision) points.

    Two classes: the curves of ``classes[1]`` as the positive class. More classes: the
    micro-average over one-vs-rest problems (every (sample, class) pair is one binary decision),
    so the declared plots exist for any number of classes.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    n_classes = probs.shape[1]
    if n_classes == 2:
        truth, score = labels == 1, probs[:, 1]
    else:
        truth = (labels[:, None] == np.arange(n_classes)[None, :]).ravel()
        score = probs.ravel()
    if truth.all() or not truth.any():
        return [], []  # a curve needs both positives and negatives
    fpr, tpr, _ = roc_curve(truth, score)
    precision, recall, _ = precision_recall_curve(truth, score, drop_intermediate=True)
    # sklearn lists PR points by decreasing threshold from recall 1 to 0; plot them left to right
    roc = [[six_decimals(f), six_decimals(t)] for f, t in zip(fpr, tpr, strict=True)]
    pr = [
        [six_decimals(r), six_decimals(p)]
        for r, p in zip(recall[::-1], precision[::-1], strict=True)
    ]
    return roc, pr
