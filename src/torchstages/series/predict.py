"""Forecast with an exported forecaster (``.onnx``, ``.int8.onnx`` or ``.pt2``): a history in (a
table file for ``torchstages predict``, JSON rows for ``torchstages serve``), the next ``horizon``
steps after the end of each series out, with their times. Both go through :func:`forecast_frame`:
the history is read by the very function the split stage used (sorting, gap filling), and its
calendar features by build-dataset's. No torch here on the ONNX path.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from torchstages.deploy.runtime import Runner
from torchstages.errors import UserError
from torchstages.io import six_decimals
from torchstages.series.build import calendar_features
from torchstages.series.read import Frequency, Series, read_series
from torchstages.tables.read import read_table
from torchstages.wording import counted, listed

__all__ = ["Forecast", "forecast_frame", "predict_series", "series_columns"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Forecast:
    """The next steps of one series: ``series`` is its id ("" for a single series)."""

    series: str
    times: list[str] | list[int]
    values: list[float]


def _typed(freq: Frequency, times: list[str]) -> list[str] | list[int]:
    """Integer times as numbers (JSON Lines and serve's JSON wrote "13" for 13), dates as
    text."""
    return [int(t) for t in times] if freq.unit == "int" else times


def _named(series: Series) -> str:
    """A series as messages name it: by its id, or "the history" when there is one series."""
    return f"series {series.id!r}" if series.id else "the history"


# the share of the steps a forecast reads that may be filled, not read
_MOST_FILLED = 0.5


def series_columns(metadata: dict[str, str]) -> dict[str, Any]:
    """The history's columns the model was trained on: time, target, id (None for a single
    series) and covariates, as ``read_series`` takes them."""
    return {
        "time": metadata["time"],
        "target": metadata["target"],
        "id": metadata["id"] or None,
        "covariates": json.loads(metadata["covariates"]),
    }


def forecast_frame(
    runner: Runner, frame: pd.DataFrame, where: str, notes: list[str] | None = None
) -> list[Forecast]:
    """Each series' forecast from the end of its history in ``frame`` (cells as text or NaN, as
    ``read_table`` gives them), in the order ``read_series`` sorts them (by id). Steps filled in
    the history are logged as a warning and, when ``notes`` is given, added to it (serve
    returns them with the answer)."""
    meta = runner.metadata
    lookback, horizon = json.loads(meta["lookback"]), json.loads(meta["horizon"])
    ids = json.loads(meta["series_ids"])
    cols = series_columns(meta)
    needed = [c for c in (cols["time"], cols["target"], cols["id"], *cols["covariates"]) if c]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise UserError(f"{where}: missing column(s) {missing} the model was trained on")
    freq = Frequency.from_dict(json.loads(meta["frequency"]))
    series, _, report = read_series(frame, cols, meta["fill"], where, freq)
    empty = sum(report["empty_cells"].values())
    if report["gaps"] or empty:
        # a filled step is the model's input as much as a real one: say it was made up
        note = (
            f"{report['gaps']} missing time steps and {empty} empty cells filled "
            f"({meta['fill']}, as in training)"
        )
        log.warning("predict: %s: %s", where, note)
        if notes is not None:
            notes.append(note)
    calendar = json.loads(meta["calendar"])
    log_target = meta.get("transform", "none") == "log"  # files from before it: none
    windows, numbers = [], []
    for s in series:
        if s.id not in ids:
            known = listed([repr(i) for i in ids])
            raise UserError(f"{where}: series {s.id!r} was not in training (known: {known})")
        name = _named(s)
        if len(s.times) < lookback:
            raise UserError(
                f"{where}: {name} has {counted(len(s.times), 'time step')}; the model reads "
                f"the last {lookback}"
            )
        made_up = int(s.filled[-lookback:].sum())
        if made_up > lookback * _MOST_FILLED:
            # a quarterly history given to a monthly model, or a long gap before the end: a
            # forecast from mostly interpolated steps would look as sure as any other
            raise UserError(
                f"{where}: {name}: {made_up} of the last {lookback} time steps the model reads "
                f"are missing on its grid ({freq.describe()}) or empty; filled by {meta['fill']} "
                "they would be made up: give a history with at least half of them"
            )
        recent = s.values[-lookback:]
        if log_target and not (recent[:, 0] > 0).all():
            raise UserError(
                f"{where}: {name} has a value <= 0 ({recent[:, 0].min():g}) in its last "
                f"{lookback} steps; the model forecasts the log of {cols['target']} "
                "(build_dataset.series.transform: log)"
            )
        windows.append(
            np.concatenate([recent, calendar_features(s.times[-lookback:], calendar)], 1)
        )
        numbers.append(ids.index(s.id))
    out = runner.run({"window": np.asarray(windows), "series": np.asarray(numbers)})
    for s, forecast in zip(series, out, strict=True):
        if not np.isfinite(forecast).all():
            # a reading within float32 but so far from the train range that a layer overflows
            largest = float(np.abs(s.values[-lookback:]).max())
            raise UserError(
                f"{where}: {_named(s)}: the forecast overflows: its last {lookback} readings reach "
                f"{largest:.3g}, far outside the train range"
            )
    return [
        Forecast(
            s.id,
            _typed(freq, freq.future(s.times[-1], horizon, s.day)),
            [six_decimals(v) for v in forecast],
        )
        for s, forecast in zip(series, out, strict=True)
    ]


def predict_series(runner: Runner, history: Path) -> tuple[list[str], list[list[Any]]]:
    """(header, rows): per series and step its forecast time and value."""
    panel = bool(runner.metadata["id"])
    forecasts = forecast_frame(runner, read_table(history), str(history))
    header = [
        *(["series"] if panel else []),
        "time",
        "step",
        f"predicted_{runner.metadata['target']}",
    ]
    rows = []
    for f in forecasts:
        for step, (time, value) in enumerate(zip(f.times, f.values, strict=True), 1):
            rows.append([*([f.series] if panel else []), time, step, value])
    return header, rows
