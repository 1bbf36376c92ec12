"""Forecast with an exported ONNX forecaster: a history file in (the columns it was trained on),
the next ``horizon`` steps after the end of each series out, with their times. The history is
read by the very function the split stage used (sorting, gap filling), and its calendar features
by build-dataset's. No torch here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from torchstages.errors import UserError
from torchstages.series.build import calendar_features
from torchstages.series.read import Frequency, read_series
from torchstages.tables.read import read_table

__all__ = ["predict_series"]


def predict_series(
    session: Any, meta: dict[str, str], history: Path
) -> tuple[list[str], list[list[Any]]]:
    """(header, rows): per series and step its forecast time and value."""
    lookback, horizon = json.loads(meta["lookback"]), json.loads(meta["horizon"])
    ids = json.loads(meta["series_ids"])
    cols = {
        "time": meta["time"],
        "target": meta["target"],
        "id": meta["id"] or None,
        "covariates": json.loads(meta["covariates"]),
    }
    frame = read_table(history)
    needed = [c for c in (cols["time"], cols["target"], cols["id"], *cols["covariates"]) if c]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise UserError(f"{history}: missing column(s) {missing} the model was trained on")
    freq = Frequency.from_dict(json.loads(meta["frequency"]))
    series, _, _ = read_series(frame, cols, meta["fill"], str(history), freq)
    calendar = json.loads(meta["calendar"])
    windows, numbers = [], []
    for s in series:
        if s.id not in ids:
            raise UserError(f"{history}: series {s.id!r} was not in training (known: {ids[:5]}...)")
        if len(s.times) < lookback:
            name = f"series {s.id!r}" if s.id else "the history"
            raise UserError(
                f"{history}: {name} has {len(s.times)} time steps; the model reads the last "
                f"{lookback}"
            )
        recent = s.values[-lookback:]
        windows.append(
            np.concatenate([recent, calendar_features(s.times[-lookback:], calendar)], 1)
        )
        numbers.append(ids.index(s.id))
    out = session.run(
        None,
        {"window": np.asarray(windows, dtype=np.float32), "series": np.asarray(numbers, np.int64)},
    )[0]
    header = [*(["series"] if cols["id"] else []), "time", "step", f"predicted_{cols['target']}"]
    rows = []
    for s, forecast in zip(series, out, strict=True):
        times = freq.future(s.times[-1], horizon)
        for step, (time, value) in enumerate(zip(times, forecast, strict=True), 1):
            rows.append([*([s.id] if cols["id"] else []), time, step, round(float(value), 6)])
    return header, rows
