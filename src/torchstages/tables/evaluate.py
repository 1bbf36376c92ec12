"""Validate/test for a table: classification as for images (without image pictures), regression
with RMSE, MAE, R², MAPE and the train-mean baseline, its plot data and two pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchstages.data.discover import Row
from torchstages.data.loader import OnDevice
from torchstages.data.store import load_table_split
from torchstages.evaluation.classification import classify_rows
from torchstages.evaluation.inference import predict_logits
from torchstages.evaluation.intervals import regression_intervals
from torchstages.evaluation.predictions import check_rows_match, write_regression_predictions
from torchstages.io import six_decimals, write_csv
from torchstages.tables.split import read_table_split

__all__ = [
    "draw_regression",
    "evaluate_table",
    "regression_metrics",
    "table_outputs",
]


def table_outputs(
    model: torch.nn.Module, numeric: np.ndarray, categorical: np.ndarray, batch: int, device
) -> torch.Tensor:
    """The model's raw outputs for a table split, in order, in eval mode."""
    return predict_logits(
        model.to(device),
        (np.asarray(numeric), np.asarray(categorical)),
        OnDevice(device),
        batch,
        device,
    )


def regression_metrics(
    predicted: np.ndarray, actual: np.ndarray, train_mean: float, std: float
) -> dict[str, Any]:
    """Headline regression metrics in the target's units; ``loss`` is the MSE of the standardised
    values (what train logs as val loss with the default mse loss)."""
    error = predicted - actual
    ss_res = float((error**2).sum())
    ss_tot = float(((actual - actual.mean()) ** 2).sum())
    out: dict[str, Any] = {
        "loss": six_decimals(float(((error / std) ** 2).mean())),
        "rmse": six_decimals(float(np.sqrt((error**2).mean()))),
        "mae": six_decimals(float(np.abs(error).mean())),
        # one repeated target: scikit-learn's 1 for a perfect fit, else 0 (no variance to explain)
        "r2": six_decimals(1 - ss_res / ss_tot) if ss_tot > 0 else float(ss_res == 0),
        # the honest baseline: always predicting the train split's mean target
        "baseline_rmse": six_decimals(float(np.sqrt(((actual - train_mean) ** 2).mean()))),
        "samples": len(actual),
    }
    if not np.any(actual == 0):
        out["mape"] = six_decimals(float(np.abs(error / actual).mean()))
    return out


def evaluate_table(
    split: str,
    model: torch.nn.Module,
    card: dict[str, Any],
    processed: Path,
    splits_dir: Path,
    plots_dir: Path,
    params: Any,
    device: torch.device,
    predictions: Path | None = None,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Metrics and plot data of ``split``; returns (metrics, probabilities or predicted values,
    labels or actual values): what the pictures need."""
    numeric, categorical, labels = load_table_split(processed, split)
    out = table_outputs(model, numeric, categorical, params.batch_size, device)
    split_rows = read_table_split(splits_dir / f"{split}.csv")
    lines = [line for _, _, _, line in split_rows]
    # a row is named by the line it starts on and identified by the hash of its cells
    rows = [Row(f"line {n}", "", sha) for n, (_, _, sha, _) in zip(lines, split_rows, strict=True)]
    if card["task"] == "classification":
        labels = np.asarray(labels)
        metrics, probs = classify_rows(
            out,
            labels,
            card["classes"],
            params,
            rows,
            processed,
            plots_dir,
            predictions,
            named_by="id",
        )
        return metrics, probs, labels
    check_rows_match(rows, len(labels), processed)
    mean, std = card["target_mean"], card["target_std"]
    predicted = out[:, 0].double().numpy() * std + mean
    actual = np.asarray(labels, dtype=np.float64)
    metrics = regression_metrics(predicted, actual, mean, std)
    if params.bootstrap_resamples:
        metrics.update(
            regression_intervals(
                predicted, actual, std, params.bootstrap_resamples, params.bootstrap_seed
            )
        )
    if predictions is not None:
        write_regression_predictions(predictions, rows, actual, predicted)
    write_csv(
        plots_dir / "predictions.csv",
        ["line", "actual", "predicted", "residual"],
        [
            [n, six_decimals(a), six_decimals(p), six_decimals(a - p)]
            for n, a, p in zip(lines, actual.tolist(), predicted.tolist(), strict=True)
        ],
    )
    return metrics, predicted, actual


def draw_regression(plots_dir: Path, split: str, predicted: np.ndarray, actual: np.ndarray) -> None:
    """predicted_vs_actual.png and residuals.png."""
    from torchstages.evaluation.figures import regression_figures, save_png

    scatter, residuals = regression_figures(predicted, actual, split)
    save_png(scatter, plots_dir / "predicted_vs_actual.png")
    save_png(residuals, plots_dir / "residuals.png")
