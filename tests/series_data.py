"""Small generated time series for the series tests: sine + trend + noise, with a known period."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def make_series(
    steps: int = 240, period: int = 12, seed: int = 0, times: str = "int", noise: float = 0.3
) -> pd.DataFrame:
    """``time``, ``value``: 20 + 0.05 t + 4 sin(2 pi t / period) + noise. ``times``: int
    (0, 1, ...), month (month starts from 2000-01) or day (daily from 2020-01-01)."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    y = 20 + 0.05 * t + 4 * np.sin(2 * np.pi * t / period) + rng.normal(0, noise, steps)
    if times == "int":
        stamps = [str(v) for v in t]
    else:
        freq = "MS" if times == "month" else "D"
        stamps = pd.date_range("2000-01-01", periods=steps, freq=freq).strftime("%Y-%m-%d").tolist()
    return pd.DataFrame({"time": stamps, "value": np.round(y, 4)})


def make_panel(series: int = 3, steps: int = 120, seed: int = 0) -> pd.DataFrame:
    """``series`` integer-time series of different levels under an ``id`` column."""
    parts = []
    for i in range(series):
        frame = make_series(steps, seed=seed + i)
        frame["value"] = (frame["value"] * (i + 1) + 100 * i).round(4)
        frame.insert(0, "id", f"s{i}")
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def write_series(frame: pd.DataFrame, folder: Path, name: str = "series.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    frame.to_csv(path, index=False, lineterminator="\n")
    return path
