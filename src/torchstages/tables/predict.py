"""Predict a table's target with an exported ONNX model: rows of a CSV/Parquet file in, one
prediction per row out, encoded by the very function build-dataset used. No torch here."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from torchstages.errors import UserError
from torchstages.params.build_dataset import TableBuildParams
from torchstages.tables.read import read_table
from torchstages.tables.schema import encode

__all__ = ["onnx_with_metadata", "table_model", "predict_table"]

log = logging.getLogger(__name__)
_BATCH = 4096


def table_model(path: Path) -> tuple[Any, dict[str, str]] | None:
    """(ONNX Runtime session, metadata) when ``path`` is an exported table model, else None."""
    session, meta = onnx_with_metadata(path)
    return (session, meta) if meta.get("kind") == "table" else None


def onnx_with_metadata(path: Path) -> tuple[Any, dict[str, str]]:
    """(ONNX Runtime session, custom metadata) of an exported ONNX model."""
    import onnxruntime as ort

    if not path.is_file():
        raise UserError(f"{path}: model not found (run dvc repro to export it)")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise UserError(f"{path}: not a loadable ONNX model ({exc})") from None
    return session, dict(session.get_modelmeta().custom_metadata_map)


def predict_table(session: Any, meta: dict[str, str], table: Path) -> tuple[list[str], list[list]]:
    """(header, rows): the file's line number, the prediction, and for classes its probability.

    The target column may be present (it is ignored), extra columns are ignored, a missing
    trained column is an error naming it; unseen categories take the 'other' index (a warning
    counts them).
    """
    schema = json.loads(meta["schema"])
    frame = read_table(table)
    frame.index = frame.index + 2  # line numbers, the header being line 1
    # missing cells are imputed as in training; a non-number in a numeric column is an error
    numeric, categorical, other = encode(frame, schema, TableBuildParams(), str(table))
    unseen = {c: n for c, n in other.items() if n}
    if unseen:
        log.warning("predict: categories not seen in training (treated as 'other'): %s", unseen)
    feeds = {"numeric": numeric, "categorical": categorical}
    names = [i.name for i in session.get_inputs()]
    out = np.concatenate(
        [
            session.run(None, {n: feeds[n][i : i + _BATCH] for n in names})[0]
            for i in range(0, len(frame), _BATCH)
        ]
    )
    lines = frame.index.tolist()
    column = f"predicted_{meta['target']}"
    if meta["task"] == "regression":
        return ["line", column], [
            [n, round(float(v), 6)] for n, v in zip(lines, out[:, 0], strict=True)
        ]
    classes = json.loads(meta["classes"])
    # softmax after the model, never inside it: the network outputs logits
    exp = np.exp(out - out.max(1, keepdims=True))
    probs = exp / exp.sum(1, keepdims=True)
    return ["line", column, "probability"], [
        [n, classes[int(p.argmax())], round(float(p.max()), 6)]
        for n, p in zip(lines, probs, strict=True)
    ]
