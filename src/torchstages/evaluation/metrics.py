"""Classification metrics from logits, computed with scikit-learn (ECE, which it lacks, by hand)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from torchstages.evaluation.intervals import classification_intervals, top_k_hits
from torchstages.io import six_decimals

__all__ = ["classification_metrics", "expected_calibration_error", "softmax"]


def softmax(logits: torch.Tensor) -> np.ndarray:
    """(N, classes) float64 probabilities; float64 so log loss and ECE do not round differently."""
    return torch.softmax(logits.double(), 1).numpy()


def classification_metrics(
    logits: torch.Tensor,
    labels: np.ndarray,
    classes: list[str],
    top_k: int = 5,
    calibration_bins: int = 15,
    resamples: int = 1000,
    seed: int = 0,
    majority: int | None = None,
) -> dict[str, Any]:
    """Headline metrics at the top level, per-class ones nested under ``per_class``.

    Each metric but ``samples`` and ``baseline_accuracy`` has a 95% interval beside it
    (``accuracy_ci_low``, ``accuracy_ci_high``; see :mod:`~torchstages.evaluation.intervals`);
    ``resamples=0`` leaves them out.

    ``loss`` is the log loss (mean cross-entropy of the softmax, natural log). ``f1_macro``
    averages the classes present in the labels or the predictions (scikit-learn's rule: a class
    absent from both has no F1). ``top{k}_accuracy`` only when there are more than k classes (it
    is 1.0 otherwise); ``roc_auc`` and ``average_precision`` of ``classes[1]`` only for two
    classes. ``baseline_accuracy``: the accuracy of always answering class ``majority`` (the
    train split's most frequent), when given.
    """
    from sklearn import metrics as skm

    y = np.asarray(labels, dtype=np.int64)
    probs = softmax(logits)
    predicted = probs.argmax(1)
    label_ids = list(range(len(classes)))
    present = sorted(set(y.tolist()) | set(predicted.tolist()))
    out: dict[str, Any] = {
        "loss": six_decimals(skm.log_loss(y, probs, labels=label_ids)),
        "accuracy": six_decimals(skm.accuracy_score(y, predicted)),
        "balanced_accuracy": six_decimals(_balanced_accuracy(y, predicted)),
        "f1_macro": six_decimals(
            skm.f1_score(y, predicted, labels=present, average="macro", zero_division=0)
        ),
        "f1_weighted": six_decimals(
            skm.f1_score(y, predicted, labels=label_ids, average="weighted", zero_division=0)
        ),
        "ece": six_decimals(expected_calibration_error(probs, y, calibration_bins)),
        "samples": len(y),
        "per_class": _per_class(y, predicted, classes),
    }
    if majority is not None:
        out["baseline_accuracy"] = six_decimals(float((y == majority).mean()))
    if len(classes) > top_k:
        out[f"top{top_k}_accuracy"] = six_decimals(float(top_k_hits(probs, y, top_k).mean()))
    if len(classes) == 2 and len(np.unique(y)) == 2:
        out["roc_auc"] = six_decimals(skm.roc_auc_score(y, probs[:, 1]))
        out["average_precision"] = six_decimals(skm.average_precision_score(y, probs[:, 1]))
    if resamples > 0:
        bounds = classification_intervals(
            probs, y, classes, top_k, calibration_bins, resamples, seed
        )
        for name, per_class in bounds.pop("per_class").items():
            out["per_class"][name].update(per_class)
        out.update(bounds)
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int) -> float:
    """Sum over equal-width confidence bins (lo, hi] of |accuracy - mean confidence| x bin share."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    # bin b holds confidences in (b/bins, (b+1)/bins]; 0 confidence cannot occur after softmax
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in np.unique(which):
        members = which == b
        total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def _balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (sklearn's definition, without its warning
    when a class is predicted but absent)."""
    from sklearn.metrics import recall_score

    present = sorted(set(y.tolist()))
    return float(recall_score(y, predicted, labels=present, average="macro", zero_division=0))


def _per_class(y: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict[str, Any]:
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=list(range(len(classes))), zero_division=0
    )
    return {
        name: {
            "precision": six_decimals(precision[i]),
            "recall": six_decimals(recall[i]),
            "f1": six_decimals(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
