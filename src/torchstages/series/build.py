"""The build-dataset stage for a time series: scaling fitted on the train range only, sliding
windows of ``lookback`` steps in and ``horizon`` steps out, optional calendar features.

Writes per split ``{split}_windows.npy`` (float32 (N, lookback, F): the scaled target, the scaled
covariates, then the calendar features), ``{split}_targets.npy`` (float32 (N, horizon), scaled)
and ``{split}_index.npy`` (int64 (N, 2): series number, position of the first forecast step),
plus ``meta.json`` with the fitted scaling.

A window belongs to the split that holds all of its *target* steps: no window's targets cross a
split boundary. Train windows read only train inputs; a val (test) window may read its inputs
from the end of the train (val) range before it: those values are history a forecaster has at
that time, never the future. Train windows are ``stride`` steps apart; val and test score every
window, so their metrics do not depend on the stride.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from torchstages.errors import UserError
from torchstages.io import atomic_dir, nine_digits, write_json, write_npy
from torchstages.params.build_dataset import SeriesBuildParams
from torchstages.paths import SPLIT_NAMES
from torchstages.series.read import Frequency
from torchstages.series.split import read_series_splits

__all__ = [
    "build_series",
    "calendar_features",
    "detect_season",
    "fit_scaler",
    "transform_target",
    "window_starts",
]

log = logging.getLogger(__name__)

_SEASONS = {  # season length of common frequencies, in steps
    ("month", 1): 12,
    ("month", 3): 4,
    ("month", 12): 1,
    ("ns", 3600 * 10**9): 24,
    ("ns", 86400 * 10**9): 7,
    ("ns", 7 * 86400 * 10**9): 52,
    ("ns", 1800 * 10**9): 48,
    ("ns", 900 * 10**9): 96,
}
_DAY_NS = 86400 * 10**9
_ACF_MIN = 0.3  # an autocorrelation peak below this is no season


def calendar_names(freq: Frequency) -> list[str]:
    """The calendar features a frequency supports: month of year for monthly and finer data,
    day of week for daily and finer; none for integer times."""
    names = []
    if freq.unit == "month" and freq.step < 12 or freq.unit == "ns" and freq.step < 28 * _DAY_NS:
        names += ["month_sin", "month_cos"]
    if freq.unit == "ns" and freq.step <= _DAY_NS:
        names += ["weekday_sin", "weekday_cos"]
    return names


def calendar_features(times: list[str], names: list[str]) -> np.ndarray:
    """(T, len(names)) float64 sin/cos of the month (period 12) and day of week (period 7)."""
    if not names:
        return np.zeros((len(times), 0))
    stamps = pd.DatetimeIndex(pd.to_datetime(times, format="mixed"))
    angle = {
        "month": 2 * np.pi * (stamps.month.to_numpy() - 1) / 12,
        "weekday": 2 * np.pi * stamps.day_of_week.to_numpy() / 7,
    }
    columns = [
        np.sin(angle[n.split("_")[0]]) if n.endswith("sin") else np.cos(angle[n.split("_")[0]])
        for n in names
    ]
    return np.stack(columns, axis=1)


def transform_target(values: np.ndarray, transform: str, where: str) -> np.ndarray:
    """(T, C) values with the target (column 0) transformed as ``build_dataset.series.transform``
    says; the covariates pass unchanged. ``where`` names the series in the error."""
    if transform == "none":
        return values
    target = values[:, 0]
    if not (target > 0).all():
        bad = float(target[~(target > 0)][0])
        raise UserError(
            f"build_dataset.series.transform log: {where} has a non-positive value ({bad:g}); "
            "log needs every value > 0 (use transform: none, or shift the column)"
        )
    return np.concatenate([np.log(target)[:, None], values[:, 1:]], axis=1)


def fit_scaler(train: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) per column of one series' train range (T, C): x -> (x - shift) / scale.
    A constant column keeps scale 1, so it is shifted but never divided by zero. Rounded to 9
    digits, as meta.json stores them: the arrays and the exported graph scale alike."""
    if kind == "standard":
        shift, scale = train.mean(0), train.std(0)
    else:
        shift, scale = train.min(0), train.max(0) - train.min(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return np.array([nine_digits(v) for v in shift]), np.array([nine_digits(v) for v in scale])


def detect_season(freq: Frequency, train_ranges: list[np.ndarray]) -> int:
    """From the frequency when it has a usual season; else (integer times) the lag with the
    highest autocorrelation of the first differences of the train ranges (1: none found)."""
    if (freq.unit, freq.step) in _SEASONS:
        return _SEASONS[(freq.unit, freq.step)]
    shortest = min(len(r) for r in train_ranges)
    lags = np.arange(2, max(2, shortest // 3))
    if not len(lags):
        return 1
    acf = np.zeros(len(lags))
    for r in train_ranges:
        d = np.diff(r) - np.diff(r).mean()  # differences: a trend has no season
        denom = float((d * d).sum()) or 1.0
        acf += np.array([(d[lag:] * d[:-lag]).sum() / denom for lag in lags])
    acf /= len(train_ranges)
    best = int(np.argmax(acf))
    return int(lags[best]) if acf[best] >= _ACF_MIN else 1


def window_starts(
    bounds: dict[str, tuple[int, int]], lookback: int, horizon: int, stride: int
) -> dict[str, np.ndarray]:
    """Per split, the positions of each window's first forecast step: all ``horizon`` targets lie
    inside the split; train inputs too, val/test inputs may reach back into earlier splits."""
    out = {}
    for name in SPLIT_NAMES:
        lo, hi = bounds[name]
        first = max(lo, lookback)
        out[name] = np.arange(first, hi - horizon + 1, stride if name == "train" else 1)
    return out


def build_series(params: SeriesBuildParams, splits_dir: Path, out_dir: Path) -> dict[str, int]:
    """Scale with train-only statistics, cut windows, write the arrays and meta.json."""
    summary, split = read_series_splits(splits_dir)
    freq = Frequency.from_dict(summary["frequency"])
    lookback, horizon = params.lookback, params.horizon
    cal_names = calendar_names(freq) if params.calendar else []
    shifts, scales, parts = [], [], {n: ([], [], []) for n in SPLIT_NAMES}
    for number, sid in enumerate(split.ids):
        values, bounds = split.values[sid], split.bounds[sid]
        _check_length(sid, len(values), bounds, params)
        where = f"the target column {summary['target']!r}" + (f" of series {sid!r}" if sid else "")
        values = transform_target(values, params.transform, where)
        train_end = bounds["train"][1]
        shift, scale = fit_scaler(values[:train_end], params.scaler)
        shifts.append(shift)
        scales.append(scale)
        inputs = np.concatenate(
            [(values - shift) / scale, calendar_features(split.times[sid], cal_names)], axis=1
        )
        for name, starts in window_starts(bounds, lookback, horizon, params.stride).items():
            windows, targets, index = parts[name]
            # (N, lookback) and (N, horizon) position grids, gathered in one step
            windows.append(inputs[starts[:, None] + np.arange(-lookback, 0)])
            targets.append(inputs[starts[:, None] + np.arange(horizon), 0])
            index.append(np.stack([np.full(len(starts), number), starts], axis=1))
    season = params.season or detect_season(
        freq, [split.values[s][: split.bounds[s]["train"][1], 0] for s in split.ids]
    )
    _check_season(season, split)
    features = [summary["target"], *summary["covariates"], *cal_names]
    meta = {
        "kind": "series",
        "task": "forecast",
        **{k: summary[k] for k in ("file", "time", "target", "id", "covariates", "frequency")},
        "fill": summary["fill"],
        "series_ids": split.ids,
        "features": features,
        "calendar": cal_names,
        "lookback": lookback,
        "horizon": horizon,
        "stride": params.stride,
        "level": params.level,
        "transform": params.transform,
        "season": season,
        # (series, column) of the target (after the transform) and covariates; calendar
        # features are not scaled
        "scaler": {
            "kind": params.scaler,
            "shift": [s.tolist() for s in shifts],
            "scale": [s.tolist() for s in scales],
        },
        "counts": {},
    }
    with atomic_dir(out_dir) as staging:
        for name in SPLIT_NAMES:
            windows, targets, index = (np.concatenate(p) for p in parts[name])
            write_npy(staging / f"{name}_windows.npy", windows.astype(np.float32))
            write_npy(staging / f"{name}_targets.npy", targets.astype(np.float32))
            write_npy(staging / f"{name}_index.npy", index.astype(np.int64))
            meta["counts"][name] = len(windows)
        write_json(staging / "meta.json", meta)
    log.info(
        "build-dataset: %d series, windows %d -> %d steps (%d features: %s), train/val/test = "
        "%s windows, %s scaling fitted on the train range, season %d",
        len(split.ids),
        lookback,
        horizon,
        len(features),
        ", ".join(features),
        "/".join(str(meta["counts"][n]) for n in SPLIT_NAMES),
        params.scaler,
        season,
    )
    return meta["counts"]


def _check_length(
    sid: str, length: int, bounds: dict[str, tuple[int, int]], params: SeriesBuildParams
) -> None:
    name = f"series {sid!r}" if sid else "the series"
    need = (params.lookback + params.horizon) * 3
    if length < need:
        raise UserError(
            f"data/splits: {name} has {length} time steps, fewer than (build_dataset.series."
            f"lookback {params.lookback} + horizon {params.horizon}) x 3 = {need}: lower them or "
            "add data"
        )
    for split in SPLIT_NAMES[1:]:
        lo, hi = bounds[split]
        if hi - lo < params.horizon:
            raise UserError(
                f"data/splits: the {split} range of {name} holds {hi - lo} steps, fewer than "
                f"build_dataset.series.horizon {params.horizon}: lower it or raise split.{split}"
            )


def _check_season(season: int, split: Any) -> None:
    # the seasonal naive forecast of a val window reads a season back; MASE's scale needs
    # at least one seasonal difference inside the train range
    shortest = min(split.bounds[s]["train"][1] for s in split.ids)
    if season >= shortest:
        raise UserError(
            f"build_dataset.series.season {season} is not shorter than the train range "
            f"({shortest} steps)"
        )
