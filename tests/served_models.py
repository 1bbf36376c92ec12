"""Tiny exported table, text and series models for the predict/serve tests and the serve
benchmark: the kind's own split, build-dataset and train stage functions (one epoch), and the
export stage's function writing ONNX and ``.pt2`` (the same metadata in both). Accuracy does not matter here;
what is served must equal what ``torchstages predict`` answers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from series_data import make_panel, write_series
from tables_data import make_table, write_table
from text_data import make_texts, write_texts

__all__ = ["export_table", "export_text", "export_series"]


def export_table(
    root: Path,
    task: str = "classification",
    rows: int = 160,
    frame: pd.DataFrame | None = None,
    build: dict | None = None,
) -> Path:
    """root/export/model.onnx and model.pt2 of a table model on ``frame`` (or a generated
    ``tables_data.make_table``), built with ``build`` (build_dataset params, or the defaults)."""
    from torchstages.params.build_dataset import BuildDatasetParams
    from torchstages.params.split import SplitParams
    from torchstages.tables.build import build_table
    from torchstages.tables.split import split_table

    write_table(make_table(rows, task) if frame is None else frame, root / "raw")
    split = SplitParams.model_validate({"table": {"drop": ["id"]}})
    split_table(root / "raw", root / "splits", split)
    params = BuildDatasetParams.model_validate(build or {})
    build_table(params, root / "raw", root / "splits", root / "processed")
    return _train_and_export(root)


def export_text(root: Path, rows: int = 120) -> Path:
    """root/export/model.onnx and model.pt2 of a text model on ``text_data.make_texts``."""
    from torchstages.params.build_dataset import BuildDatasetParams
    from torchstages.params.split import SplitParams
    from torchstages.text.build import build_texts
    from torchstages.text.split import split_texts

    write_texts(make_texts(rows), root / "raw")
    split_texts(root / "raw", root / "splits", SplitParams.model_validate({"kind": "text"}))
    build_texts(BuildDatasetParams(), root / "raw", root / "splits", root / "processed")
    return _train_and_export(root)


def export_series(root: Path, series: int = 2, steps: int = 60) -> Path:
    """root/export/model.onnx and model.pt2 of a forecaster over a panel (``id`` column), or
    of one series (``time``, ``value``) when ``series`` is 1."""
    from torchstages.params.build_dataset import SeriesBuildParams
    from torchstages.params.split import SplitParams
    from torchstages.series.build import build_series
    from torchstages.series.split import split_series

    panel = make_panel(series, steps)
    write_series(panel.drop(columns="id") if series == 1 else panel, root / "raw")
    columns = {"id": "id"} if series > 1 else {}
    split = SplitParams.model_validate({"kind": "series", "series": columns})
    split_series(root / "raw", root / "splits", split)
    build_series(SeriesBuildParams(lookback=8, horizon=3), root / "splits", root / "processed")
    return _train_and_export(root)


def _train_and_export(root: Path) -> Path:
    """Train one epoch, then export ONNX and .pt2 with the export stage's function."""
    from torchstages.deploy.export import export_and_verify
    from torchstages.params.export import ExportParams
    from torchstages.params.train import TrainParams
    from torchstages.training.loop import TrainOutputs
    from torchstages.training.loop import train as train_model

    models = root / "models"
    outputs = TrainOutputs(
        models / "w.safetensors", models / "card.json", models / "ckpt.pt", models / "live"
    )
    params = TrainParams.model_validate({"epochs": 1, "threads": 1, "seed": 0})
    train_model(params, root / "processed", outputs)
    export = root / "export"
    export_and_verify(
        ExportParams(formats=["onnx", "pt2"]),
        outputs.weights,
        outputs.card,
        root / "processed",
        export,
        root / "export.json",
    )
    return export
