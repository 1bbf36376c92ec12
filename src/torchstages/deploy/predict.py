"""Classify image files with an exported ONNX model, using the preprocessing stored inside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from torchstages.data.images import Preprocessing, load_image
from torchstages.errors import UserError

__all__ = ["Prediction", "predict_files", "predict_rows"]

Prediction = tuple[str, str, float]  # (file, class, probability)


def predict_files(model_path: Path, files: list[Path], batch_size: int = 256) -> list[Prediction]:
    """Top-1 class and its softmax probability for each file, in the order given."""
    import onnxruntime as ort

    if not model_path.exists():
        raise UserError(f"{model_path}: model not found (run dvc repro to export it)")
    try:
        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise UserError(f"{model_path}: not a loadable ONNX model ({exc})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("kind") == "table":
        raise UserError(f"{model_path}: a table model: give it one CSV or Parquet file of rows")
    if "classes" not in meta or "preprocessing" not in meta:
        raise UserError(f"{model_path}: no torchstages metadata (export it with the export stage)")
    classes = json.loads(meta["classes"])
    prep = Preprocessing.from_dict(json.loads(meta["preprocessing"]))
    results: list[Prediction] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        pixels = np.stack([load_image(f, prep) for f in chunk]).astype(np.float32)
        logits = session.run(None, {"pixels": pixels})[0]
        # softmax after the model, never inside it: the network outputs logits
        exp = np.exp(logits - logits.max(1, keepdims=True))
        probs = exp / exp.sum(1, keepdims=True)
        for f, p in zip(chunk, probs, strict=True):
            results.append((str(f), classes[int(p.argmax())], float(p.max())))
    return results


def predict_rows(model_path: Path, table: Path) -> tuple[list[str], list[list]]:
    """A table model's predictions for every row of ``table`` (see tables/predict.py)."""
    import onnxruntime as ort

    from torchstages.tables.predict import predict_table

    if not model_path.exists():
        raise UserError(f"{model_path}: model not found (run dvc repro to export it)")
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("kind") != "table":
        raise UserError(f"{model_path}: an image model: give it image files, not a table")
    return predict_table(session, meta, table)
