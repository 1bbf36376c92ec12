"""Small generated tables for the table tests: learnable, with every column type and missing cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def make_table(rows: int = 120, task: str = "classification", seed: int = 0) -> pd.DataFrame:
    """Numeric, categorical, boolean and date columns, some cells missing, a learnable target."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0, 1, rows)
    x2 = rng.uniform(10, 20, rows)
    colour = rng.choice(["red", "green", "blue"], rows)
    flag = rng.choice(["yes", "no"], rows)
    day = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D")
    signal = 2 * x1 + (colour == "red") * 1.5 - (x2 - 15) / 5
    frame = pd.DataFrame(
        {
            "id": [f"r{i:04d}" for i in range(rows)],
            "x1": np.round(x1, 4),
            "x2": np.round(x2, 3),
            "colour": colour,
            "flag": flag,
            "day": day.strftime("%Y-%m-%d"),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "x2"] = np.nan
    frame.loc[rng.random(rows) < 0.1, "colour"] = np.nan
    if task == "classification":
        frame["target"] = np.where(signal > np.median(signal), "high", "low")
    else:
        frame["target"] = np.round(10 + 3 * signal + rng.normal(0, 0.3, rows), 3)
    return frame


def write_table(frame: pd.DataFrame, folder: Path, name: str = "table.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, lineterminator="\n")
    return path
