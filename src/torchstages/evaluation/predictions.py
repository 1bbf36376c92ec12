"""Per-sample predictions of one evaluated split: the small, byte-stable file ``compare`` pairs.

One CSV row per sample in split order. The header names the task: classification rows hold
``id, sha256, label, predicted, p_label`` (class names, and the probability the model gave the
true class); regression rows hold ``id, sha256, target, predicted``. ``id`` is the sample's path
under data/raw and ``sha256`` the hash of its bytes, so two runs are paired only when they were
evaluated on the very same samples.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torchstages.data.discover import Row
from torchstages.errors import UserError
from torchstages.io import six_decimals, write_csv

__all__ = [
    "HEADERS",
    "Predictions",
    "check_rows_match",
    "parse_predictions",
    "write_predictions",
    "write_regression_predictions",
]

HEADERS = {
    "classification": ["id", "sha256", "label", "predicted", "p_label"],
    "regression": ["id", "sha256", "target", "predicted"],
    "forecast": ["series", "origin", "time", "step", "actual", "predicted"],
}


@dataclass(frozen=True)
class Predictions:
    """One run's predictions on one split; ``truth`` and ``predicted`` are class names (str) for
    classification, floats for regression, and (windows, horizon) floats for forecasts."""

    task: str
    ids: list[tuple[str, str]]  # (id, sha256) per sample, (series, origin) per window; in order
    truth: np.ndarray
    predicted: np.ndarray


def check_rows_match(rows: list[Row], samples: int, processed: Path) -> None:
    """The split file must list the samples the arrays hold, before anything is written: a split
    rerun without build-dataset pairs names with the wrong samples."""
    if len(rows) != samples:
        raise UserError(
            f"{processed}: the arrays hold {samples} samples but the split lists {len(rows)}: "
            "the split changed after build-dataset (rerun it: dvc repro)"
        )


def write_predictions(
    path: Path, rows: list[Row], labels: np.ndarray, probs: np.ndarray, classes: list[str]
) -> None:
    """The classification file of one split: ``rows`` and ``labels`` in the same (split) order."""
    p_label = probs[np.arange(len(labels)), labels]
    write_csv(
        path,
        HEADERS["classification"],
        [
            [row.path, row.sha256, classes[y], classes[p], six_decimals(q)]
            for row, y, p, q in zip(rows, labels, probs.argmax(1), p_label, strict=True)
        ],
    )


def write_regression_predictions(
    path: Path, rows: list[Row], actual: np.ndarray, predicted: np.ndarray
) -> None:
    """The regression file of one split: values in the target's units, rows in split order."""
    write_csv(
        path,
        HEADERS["regression"],
        [
            [row.path, row.sha256, six_decimals(a), six_decimals(p)]
            for row, a, p in zip(rows, actual, predicted, strict=True)
        ],
    )


def parse_predictions(text: str, source: str) -> Predictions:
    """Read a predictions file's text; ``source`` names it in errors (a path, or ``REV:path``)."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    task = next((name for name, h in HEADERS.items() if h == header), None)
    if task is None:
        expected = " or ".join(",".join(h) for h in HEADERS.values())
        raise UserError(f"{source}: expected header {expected}, got {header}")
    rows = list(reader)
    if any(len(r) != len(header) for r in rows):
        raise UserError(f"{source}: every row needs {len(header)} fields ({','.join(header)})")
    if task == "forecast":
        return _forecasts(rows, source)
    ids = [(r[0], r[1]) for r in rows]
    if task == "classification":
        truth = np.array([r[2] for r in rows], dtype=object)
        predicted = np.array([r[3] for r in rows], dtype=object)
    else:
        try:
            truth = np.array([float(r[2]) for r in rows])
            predicted = np.array([float(r[3]) for r in rows])
        except ValueError as exc:
            raise UserError(f"{source}: {exc}") from None
    return Predictions(task, ids, truth, predicted)


def _forecasts(rows: list[list[str]], source: str) -> Predictions:
    """Rows of one window after another, steps 1..horizon in order: (windows, horizon) arrays."""
    horizon = next((i for i, r in enumerate(rows) if i and r[3] == "1"), len(rows))
    steps = [str(h + 1) for h in range(horizon)]
    if (
        horizon == 0
        or len(rows) % horizon
        or any([r[3] for r in rows[i : i + horizon]] != steps for i in range(0, len(rows), horizon))
    ):
        raise UserError(f"{source}: every window needs steps 1..{horizon} in order")
    try:
        # an empty actual: a value the split filled, which is not scored
        values = np.array([[float(r[4] or "nan"), float(r[5])] for r in rows])
        values = values.reshape(-1, horizon, 2)
    except ValueError as exc:
        raise UserError(f"{source}: {exc}") from None
    ids = [(rows[i][0], rows[i][1]) for i in range(0, len(rows), horizon)]
    return Predictions("forecast", ids, values[:, :, 0], values[:, :, 1])
