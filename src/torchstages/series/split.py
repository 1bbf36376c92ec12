"""The split stage for a time series: chronological, never shuffled. Each series' first
``split.train`` of time steps is train, the next ``split.val`` val, the rest test.

Writes ``{train,val,test}.csv`` (id, time, step, target, covariates, filled: the values on their
regular grid, gaps filled) and ``summary.json`` with the date ranges and the leakage proof:
within every series, every val time is after every train time and every test time after every
val time. Later stages read only these files, never ``data/raw``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from torchstages.data.split import read_csv_rows
from torchstages.errors import UserError
from torchstages.io import read_json, write_csv, write_json
from torchstages.params.split import SplitParams
from torchstages.paths import SPLIT_NAMES
from torchstages.series.read import Frequency, Series, read_series, resolve_series_columns
from torchstages.tables.read import find_table, read_table

__all__ = ["SplitSeries", "check_chronological", "cut_points", "read_series_splits", "split_series"]

log = logging.getLogger(__name__)

FIXED = ["id", "time", "step"]
# a series whose target is filled at more than this share of its steps is named in a warning
_MADE_UP_SHARE = 0.2


def cut_points(length: int, fractions: dict[str, float], where: str) -> tuple[int, int]:
    """(end of train, end of val) positions; every range gets at least one step."""
    train = int(round(length * fractions["train"]))
    val = int(round(length * (fractions["train"] + fractions["val"]))) - train
    if min(train, val, length - train - val) < 1:
        raise UserError(
            f"{where}: {length} time steps are too few to split into train, val and test"
        )
    return train, train + val


def check_chronological(ranges: dict[str, list[tuple[int, int]]]) -> None:
    """The leakage check: per series, train, val and test are consecutive, non-overlapping
    ranges in time order. ``ranges[split][i]`` is series i's [first, last] step. A violation is a
    bug in the split, never the user's data: it stops the stage with a traceback."""
    for i, (train, val, test) in enumerate(zip(*(ranges[s] for s in SPLIT_NAMES), strict=True)):
        if not (train[0] <= train[1] < val[0] <= val[1] < test[0] <= test[1]):
            raise AssertionError(
                f"series {i}: split ranges train {train}, val {val}, test {test} are not "
                "chronological: a later time would reach an earlier split"
            )


def split_series(raw_dir: Path, out_dir: Path, params: SplitParams) -> dict[str, Any]:
    """Read, regularise, cut chronologically per series, prove the order, write."""
    path = find_table(raw_dir)
    frame = read_table(path)
    cols = resolve_series_columns(frame, params.series, path)
    series, freq, report = read_series(frame, cols, params.series.fill, str(path))
    fractions = {"train": params.train, "val": params.val, "test": params.test}
    rows: dict[str, list[list[Any]]] = {name: [] for name in SPLIT_NAMES}
    ranges: dict[str, list[tuple[int, int]]] = {name: [] for name in SPLIT_NAMES}
    for s in series:
        where = f"{path}: series {s.id!r}" if s.id else str(path)
        bounds = (0, *cut_points(len(s.times), fractions, where), len(s.times))
        for k, name in enumerate(SPLIT_NAMES):
            lo, hi = bounds[k], bounds[k + 1]
            ranges[name].append((lo, hi - 1))
            rows[name] += [
                [s.id, s.times[t], t, *map(_number, s.values[t]), int(s.filled[t])]
                for t in range(lo, hi)
            ]
    check_chronological(ranges)
    header = [*FIXED, cols["target"], *cols["covariates"], "filled"]
    for name in SPLIT_NAMES:
        write_csv(out_dir / f"{name}.csv", header, rows[name])
    summary = _summary(path, cols, freq, series, ranges, report, params)
    write_json(out_dir / "summary.json", summary)
    for s in series:
        _name_made_up_steps(s, cols["target"], params.series.fill, path)
    if report["unsorted_series"]:
        log.warning(
            "split: %s: rows of %d series were not in time order: sorted by %r",
            path.name,
            report["unsorted_series"],
            cols["time"],
        )
    log.info(
        "split: time series %s, target %r, %d series, %s; %d missing steps and %d empty cells "
        "filled (%s); train/val/test = %s steps, chronological -> %s",
        path.name,
        cols["target"],
        len(series),
        freq.describe(),
        report["gaps"],
        sum(report["empty_cells"].values()),
        params.series.fill,
        "/".join(str(summary["totals"][s]) for s in SPLIT_NAMES),
        out_dir,
    )
    return summary


def _name_made_up_steps(s: Series, target: str, fill: str, path: Path) -> None:
    """A series whose target is mostly filled teaches the model values ``fill`` made up; the
    count alone in the log said nothing of where."""
    if s.filled.mean() <= _MADE_UP_SHARE:
        return
    edges = np.diff(np.concatenate([[0], s.filled.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(ends - starts))
    log.warning(
        "split: %s%s: %d of %d steps of %r were missing or empty and are filled (%s; the "
        "longest gap: %d steps from %s): the model learns from made-up values; check the file, "
        "or set split.series.fill: error to stop on them",
        path.name,
        f" series {s.id!r}" if s.id else "",
        int(s.filled.sum()),
        len(s.filled),
        target,
        fill,
        int(ends[longest] - starts[longest]),
        s.times[int(starts[longest])],
    )


def _number(value: float) -> float | int:
    # integral values written without ".0": "112" stays "112"
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)


def _summary(
    path: Path,
    cols: dict[str, Any],
    freq: Frequency,
    series: list[Series],
    ranges: dict[str, list[tuple[int, int]]],
    report: dict[str, Any],
    params: SplitParams,
) -> dict[str, Any]:
    def span(name: str, i: int) -> list[str]:
        first, last = ranges[name][i]
        return [series[i].times[first], series[i].times[last]]

    return {
        "kind": "series",
        "task": "forecast",
        "file": path.name,
        **cols,
        "frequency": freq.to_dict(),
        "fill": params.series.fill,
        "series": len(series),
        "totals": {n: sum(b - a + 1 for a, b in ranges[n]) for n in SPLIT_NAMES},
        # per series: the [first, last] time of each split
        "ranges": {s.id: {n: span(n, i) for n in SPLIT_NAMES} for i, s in enumerate(series)},
        "leakage_check": "passed: per series, every val time is after every train time and "
        "every test time after every val time",
        "rows_out_of_order": report["unsorted_series"] > 0,
        "missing_steps_filled": report["gaps"],
        "empty_cells_filled": report["empty_cells"],
    }


class SplitSeries:
    """The split's series read back: per series its times and values with each split's bounds."""

    def __init__(self, splits_dir: Path, summary: dict[str, Any]) -> None:
        columns = [summary["target"], *summary["covariates"]]
        header = [*FIXED, *columns, "filled"]
        self.ids: list[str] = []
        times: dict[str, list[str]] = {}
        values: dict[str, list[list[float]]] = {}
        filled: dict[str, list[bool]] = {}
        self.bounds: dict[str, dict[str, tuple[int, int]]] = {}
        for name in SPLIT_NAMES:
            path = splits_dir / f"{name}.csv"
            try:
                for row in read_csv_rows(path, header):
                    sid = row[0]
                    if sid not in times:
                        self.ids.append(sid)
                        times[sid], values[sid], filled[sid], self.bounds[sid] = [], [], [], {}
                    step = int(row[2])
                    first = self.bounds[sid].get(name, (step, step))[0]
                    self.bounds[sid][name] = (first, step + 1)  # [first, end) of this split
                    times[sid].append(row[1])
                    values[sid].append([float(v) for v in row[3 : 3 + len(columns)]])
                    filled[sid].append(row[-1] == "1")
            except ValueError:
                raise UserError(f"{path}: not a series split written by the split stage") from None
        self.times = times
        self.values = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
        # steps whose target the split made up (split.series.fill): inputs, never scored
        self.filled = {k: np.asarray(v, dtype=bool) for k, v in filled.items()}


def read_series_splits(splits_dir: Path) -> tuple[dict[str, Any], SplitSeries]:
    """The split summary and the split series, as build-dataset and evaluation read them."""
    summary = read_json(splits_dir / "summary.json")
    return summary, SplitSeries(splits_dir, summary)
