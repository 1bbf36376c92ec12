"""A classifier's evaluated split, whatever the data kind: its metrics, the plot data and the
per-sample predictions that ``compare`` pairs. Images, tables and texts all go through
:func:`classify_rows`, so their files agree in layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchstages.data.discover import Row
from torchstages.data.store import load_arrays
from torchstages.evaluation.metrics import classification_metrics, softmax
from torchstages.evaluation.plot_data import write_plot_data
from torchstages.evaluation.predictions import check_rows_match, write_predictions

__all__ = ["classify_rows"]


def classify_rows(
    logits: torch.Tensor,
    labels: np.ndarray,
    classes: list[str],
    params: Any,
    rows: list[Row],
    processed: Path,
    plots_dir: Path,
    predictions: Path | None,
    named_by: str = "file",
) -> tuple[dict[str, Any], np.ndarray]:
    """Classification metrics, plot data and (to ``predictions``) per-sample predictions of
    one split, ``rows`` naming its samples (image files, a table's rows, texts); returns
    (metrics, probabilities). The baseline beside the accuracy answers the most frequent class
    of the train split in ``processed`` (every kind stores ``train_labels.npy``). ``named_by``
    heads the column of mistakes.csv that names them: ``file`` for images, ``id`` (as in
    predictions.csv: ``line 159``) for a table's or text's."""
    check_rows_match(rows, len(labels), processed)
    (train_labels,) = load_arrays(processed, "train", ("labels",))
    metrics = classification_metrics(
        logits,
        labels,
        classes,
        params.top_k,
        params.calibration_bins,
        params.bootstrap_resamples,
        params.bootstrap_seed,
        majority=int(np.bincount(train_labels, minlength=len(classes)).argmax()),
    )
    probs = softmax(logits)
    write_plot_data(plots_dir, probs, labels, classes, metrics, rows, named_by)
    if predictions is not None:
        write_predictions(predictions, rows, labels, probs, classes)
    return metrics, probs
