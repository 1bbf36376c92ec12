"""Classification metrics from logits, computed with scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["classification_metrics"]


def classification_metrics(
    logits: torch.Tensor, labels: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """Headline metrics at the top level (``loss``, ``accuracy``, ``f1_macro``), per class nested."""
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    targets = torch.as_tensor(np.array(labels), dtype=torch.long)
    predicted = logits.argmax(1).numpy()
    label_ids = list(range(len(classes)))
    report = classification_report(
        targets.numpy(),
        predicted,
        labels=label_ids,
        target_names=classes,
        output_dict=True,
        zero_division=0,
    )
    return {
        "loss": _r(F.cross_entropy(logits, targets).item()),
        "accuracy": _r(accuracy_score(targets.numpy(), predicted)),
        "f1_macro": _r(
            f1_score(targets.numpy(), predicted, labels=label_ids, average="macro", zero_division=0)
        ),
        "samples": len(targets),
        "per_class": {
            name: {
                "precision": _r(report[name]["precision"]),
                "recall": _r(report[name]["recall"]),
                "f1": _r(report[name]["f1-score"]),
                "support": int(report[name]["support"]),
            }
            for name in classes
        },
    }


def _r(value: float) -> float:
    """Six decimals: readable diffs, and float noise below that never changes a tracked file."""
    return round(float(value), 6)
