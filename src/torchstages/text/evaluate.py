"""Validate/test for texts: classification metrics and plot data as for images and tables, and
the most confidently wrong texts (``wrong_texts.csv``, listed by the report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchstages.data.discover import Row
from torchstages.data.loader import OnDevice
from torchstages.evaluation.classification import classify_rows
from torchstages.evaluation.inference import predict_logits
from torchstages.evaluation.plot_data import mistake_order
from torchstages.io import read_json, six_decimals, write_csv
from torchstages.tables.split import read_table_split
from torchstages.text.store import TEXTS_FILE, load_text_split

__all__ = ["WRONG_TEXTS", "evaluate_text", "text_outputs"]

WRONG_TEXTS = "wrong_texts.csv"
SHOWN_CHARS = 200  # a text longer than this is cut (with an ellipsis) in wrong_texts.csv


def text_outputs(
    model: torch.nn.Module, tokens: np.ndarray, lengths: np.ndarray, batch: int, device
) -> torch.Tensor:
    """The model's logits for a split's texts, in order, in eval mode."""
    inputs = (np.asarray(tokens), np.asarray(lengths))
    return predict_logits(model.to(device), inputs, OnDevice(device), batch, device)


def evaluate_text(
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
    """Metrics and plot data of ``split``; returns (metrics, probabilities, labels)."""
    tokens, lengths, labels = load_text_split(processed, split)
    labels = np.asarray(labels)
    logits = text_outputs(model, tokens, lengths, params.batch_size, device)
    split_rows = read_table_split(splits_dir / f"{split}.csv")
    # a text is named by its line in the file and identified by the hash of its cells
    rows = [Row(f"line {line}", "", sha) for _, _, sha, line in split_rows]
    classes = card["classes"]
    metrics, probs = classify_rows(
        logits, labels, classes, params, rows, processed, plots_dir, predictions, named_by="id"
    )
    texts = read_json(processed / TEXTS_FILE)[split]
    _write_wrong_texts(plots_dir / WRONG_TEXTS, texts, rows, probs, labels, classes)
    return metrics, probs, labels


def _write_wrong_texts(
    path: Path,
    texts: list[str],
    rows: list[Row],
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
) -> None:
    """The wrongly classified texts, most confident first: id (``line 17``, as in mistakes.csv and
    predictions.csv), true, predicted, probability and the text (cut to ``SHOWN_CHARS``; one
    line: breaks become spaces)."""
    out = []
    for i in mistake_order(probs, labels):
        text = " ".join(texts[i].split())
        if len(text) > SHOWN_CHARS:
            text = text[: SHOWN_CHARS - 1] + "…"
        p = probs[i]
        out.append(
            [rows[i].path, classes[labels[i]], classes[p.argmax()], six_decimals(p.max()), text]
        )
    write_csv(path, ["id", "actual", "predicted", "probability", "text"], out)
