"""Training a forecaster: scaled windows and their targets, an mlp by default, in fp32, with a
recurrent model's sizes filled in for series."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from torchstages.data.store import load_series_split
from torchstages.models.recurrent import RecurrentSpec
from torchstages.params.train import TrainParams
from torchstages.training.kind import KindTraining

__all__ = ["SeriesTraining"]


class SeriesTraining(KindTraining):
    # picked on the validation ranges of bench/series.py (bench/RESULTS.md)
    default_model = "mlp"

    def load(self, processed_dir: Path, split: str) -> tuple[np.ndarray, ...]:
        return load_series_split(processed_dir, split)

    def defaults(
        self, params: TrainParams, model: dict[str, Any] | None, meta: dict[str, Any]
    ) -> dict[str, Any]:
        update: dict[str, Any] = {}
        if isinstance(params.model, RecurrentSpec):
            # the card records the sizes trained, not "unset" (hidden: 64 for series)
            update["model"] = params.model.for_series().model_dump(mode="json")
        if params.precision == "auto":
            # bf16 keeps 3 significant digits: too coarse for forecasts, and these small
            # networks gain no speed from it
            update["precision"] = "fp32"
        return update

    def card(self, meta: dict[str, Any], params: TrainParams) -> dict[str, Any]:
        # everything evaluation, export and predict need: scaling, windows, frequency
        return {k: v for k, v in meta.items() if k not in ("counts", "stride", "file")}
