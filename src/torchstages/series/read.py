"""Reading a time series from one table file: the time column parsed (integers, dates or
datetimes), rows sorted by time (reported when they were not), duplicate times refused, the
frequency detected, and missing time steps and empty cells filled by ``split.series.fill``.

The same function reads the training file (split stage) and a history to forecast from
(``torchstages predict``), so both see identical values.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from torchstages.errors import UserError
from torchstages.params.split import SeriesSplitParams
from torchstages.tables.read import (
    FIRST_DATA_LINE,
    LOCAL_ORDER_DATE,
    first_non_number,
    similar_spellings,
)

__all__ = ["Frequency", "Series", "detect_frequency", "read_series", "resolve_series_columns"]

log = logging.getLogger(__name__)

_TIME_NAMES = ("time", "date", "datetime", "timestamp", "month", "ds", "t")
_TARGET_NAMES = ("target", "y", "value")
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_MONTH_ONLY = r"\d{4}-\d{2}"
_LAST_DAY = 31  # a monthly day that every month clips to its last
# a zone after a time of day (T10:00, 10:00:00.5, T100000): Z, UTC, GMT, +HH, +HHMM, +HH:MM
_ZONE = r"\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"
# "UTC+01:00": pandas reads it with the POSIX sign, as one hour *behind* UTC; not guessed
_NAMED_OFFSET = r"(?:UTC|GMT)\s*[+-]\d"
_ZONED = r"[T ]\d{2}:?\d{2}(?::?\d{2}(?:[.,]\d+)?)?" + _ZONE


@dataclass(frozen=True)
class Frequency:
    """The step between two observations: ``step`` integers, calendar months, or nanoseconds.

    Months are calendar units (28 to 31 days), so monthly data is recognised whatever the days;
    ``month_end`` says the dates sit on the last day of their month, else on ``day`` (a month
    too short for it on its last day: the 30th, February's 28th). ``month_only``: the file wrote
    months without a day (``1949-01``), and so are they written. ``date_only``: no times of
    day, so times are written as dates. ``utc``: the file's times carried UTC offsets and were
    converted to UTC, so times are written with a ``Z``.
    """

    unit: str  # "int" | "month" | "ns"
    step: int
    month_end: bool = False
    date_only: bool = True
    utc: bool = False
    day: int = 1
    month_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {
            "unit": self.unit,
            "step": self.step,
            "month_end": self.month_end,
            "date_only": self.date_only,
        }
        # written only when set, so the meta.json of data without them is as before
        optional = {
            "utc": self.utc,
            "day": self.day != 1 and self.day,
            "month_only": self.month_only,
        }
        return {**out, **{k: v for k, v in optional.items() if v}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Frequency:
        return cls(
            d["unit"],
            int(d["step"]),
            bool(d["month_end"]),
            bool(d["date_only"]),
            bool(d.get("utc", False)),
            int(d.get("day", 1)),
            bool(d.get("month_only", False)),
        )

    def describe(self) -> str:
        if self.unit == "int":
            return f"every {self.step} (integer times)"
        if self.unit == "month":
            return {1: "monthly", 3: "quarterly", 12: "yearly"}.get(
                self.step, f"every {self.step} months"
            )
        seconds, rest = divmod(self.step, 10**9)
        named = {1: "every second", 60: "every minute", 3600: "hourly", 86400: "daily"}
        named[604800] = "weekly"
        if not rest and seconds in named:
            return named[seconds]
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
            if not rest and seconds % size == 0:
                return f"every {seconds // size} {unit}s"
        return f"every {pd.Timedelta(self.step)}"

    def ordinals(self, times: pd.Series) -> np.ndarray:
        """int64 positions on this frequency's own scale (not yet divided by ``step``)."""
        if self.unit == "int":
            return times.to_numpy(dtype=np.int64)
        if self.unit == "month":
            return (times.dt.year * 12 + times.dt.month - 1).to_numpy(dtype=np.int64)
        return times.to_numpy(dtype="datetime64[ns]").astype(np.int64)

    def from_ordinals(self, ordinals: np.ndarray, day: int | None = None) -> list[str]:
        """Formatted times of int64 ordinals (the inverse of :meth:`ordinals`); monthly ones on
        ``day`` (a series' own: a panel's series may each sit on a day of their own, and a
        history given to predict keeps its day), else on this frequency's."""
        if self.unit == "int":
            return [str(int(v)) for v in ordinals]
        if self.unit == "month":
            starts = pd.DatetimeIndex(
                pd.to_datetime({"year": ordinals // 12, "month": ordinals % 12 + 1, "day": 1})
            )
            anchor = day or (_LAST_DAY if self.month_end else self.day)
            stamps = starts + pd.to_timedelta(np.minimum(anchor, starts.days_in_month) - 1, "D")
        else:
            stamps = pd.to_datetime(ordinals.astype("datetime64[ns]"))
        fmt = "%Y-%m-%d" if self.date_only else "%Y-%m-%dT%H:%M:%S" + ("Z" if self.utc else "")
        if self.month_only:
            fmt = "%Y-%m"
        return [s.strftime(fmt) for s in pd.DatetimeIndex(stamps)]

    def future(self, last: str, steps: int, day: int | None = None) -> list[str]:
        """The ``steps`` times after ``last`` (a formatted time of this frequency), monthly ones
        on ``day`` as in :meth:`from_ordinals`."""
        ordinal = self.ordinals(_parse_times(pd.Series([last]), "predict").times)[0]
        following = ordinal + self.step * np.arange(1, steps + 1, dtype=np.int64)
        return self.from_ordinals(following, day)


@dataclass
class Series:
    """One series on a regular grid: ``values`` (T, 1 + covariates) float64, target first;
    ``filled`` marks steps whose target was missing and filled."""

    id: str
    times: list[str]
    values: np.ndarray
    filled: np.ndarray
    day: int | None = None  # monthly: the day of the month its readings sit on


def resolve_series_columns(
    frame: pd.DataFrame, params: SeriesSplitParams, path: Path
) -> dict[str, Any]:
    """Time, target, id and covariate columns, checked against the file's header."""
    columns = list(frame.columns)
    given = [("split.series.time", params.time), ("split.series.id", params.id)]
    given += [("split.series.covariates", c) for c in params.covariates]
    for key, column in given:
        # before guessing the target from the other columns: a mistyped name would be blamed
        # on the target
        if column is not None and column not in columns:
            raise UserError(f"{path}: {key}: no column {column!r} (columns: {columns})")
    time = params.time or next((c for c in columns if c.lower() in _TIME_NAMES), None)
    if time is None:
        raise UserError(
            f"{path}: no column named {'/'.join(_TIME_NAMES)}; set split.series.time to one "
            f"of {columns}"
        )
    target = params.target
    if target is None:
        # a column with no value at all (a trailing delimiter on every line) is no candidate
        rest = [
            c
            for c in columns
            if c not in {time, params.id, *params.covariates} and frame[c].notna().any()
        ]
        named = [c for c in rest if c.lower() in _TARGET_NAMES]
        if len(rest) != 1 and not named:
            # a text column beside the numbers is most likely the series' name (a panel)
            texts = [c for c in rest if pd.to_numeric(frame[c], errors="coerce").isna().all()]
            panel = f" (and split.series.id: {texts[0]}, if it names each series)" if texts else ""
            raise UserError(
                f"{path}: cannot tell which column to forecast among {rest}: set "
                f"split.series.target{panel}"
            )
        target = rest[0] if len(rest) == 1 else named[0]
    if target not in columns:  # the others were checked above
        raise UserError(f"{path}: split.series.target: no column {target!r} (columns: {columns})")
    if target == time or target in params.covariates or target == params.id:
        raise UserError(
            f"{path}: split.series.target {target!r} is also the time, id or a covariate"
        )
    return {"time": time, "target": target, "id": params.id, "covariates": list(params.covariates)}


@dataclass(frozen=True)
class _Times:
    times: pd.Series  # int64, or naive datetimes
    integer: bool
    utc: bool = False  # converted to UTC from the offsets the file gave
    month_only: bool = False  # every time a month without a day: 1949-01


def _parse_times(column: pd.Series, where: str) -> _Times:
    """Every cell an integer, else every cell a date or datetime."""
    missing = column.isna()
    if missing.any():
        line = int(np.flatnonzero(missing.to_numpy())[0]) + FIRST_DATA_LINE
        raise UserError(f"{where}: line {line}: the time is empty")
    text = column.astype(str)
    integer = text.map(lambda v: bool(_INTEGER.match(v))).to_numpy()
    if integer.all():
        return _Times(text.astype(np.int64), True)
    if integer.mean() > 0.5:  # integer times with a stray cell: name that cell
        first = int(np.flatnonzero(~integer)[0])
        raise UserError(
            f"{where}: line {first + FIRST_DATA_LINE}: time {text.iloc[first]!r} is not an "
            "integer like the other times"
        )
    local = text.str.strip().str.fullmatch(LOCAL_ORDER_DATE).to_numpy()
    if local.any():
        # parsed cell by cell, 01.02.2020 would be January and 13.02.2020 February
        first = int(np.flatnonzero(local)[0])
        raise UserError(
            f"{where}: line {first + FIRST_DATA_LINE}: time {text.iloc[first]!r} has day and "
            "month in a local order, which is not guessed: write times as YYYY-MM-DD"
        )
    text = text.str.strip()
    named = text.str.contains(_NAMED_OFFSET).to_numpy()
    if named.any():
        first = int(np.flatnonzero(named)[0])
        raise UserError(
            f"{where}: line {first + FIRST_DATA_LINE}: time {text.iloc[first]!r} gives its offset "
            "after UTC or GMT, which readers take with opposite signs: write it as +01:00"
        )
    zoned = text.str.contains(_ZONED).to_numpy()
    if zoned.any() and not zoned.all():
        first = int(np.flatnonzero(zoned != zoned[0])[0])
        raise UserError(
            f"{where}: line {first + FIRST_DATA_LINE}: time {text.iloc[first]!r} "
            f"{'has a' if zoned[first] else 'has no'} UTC offset and line {FIRST_DATA_LINE} "
            f"{'has none' if zoned[first] else 'has one'}: give every time an offset, or none"
        )
    parsed, utc = _to_datetimes(text, bool(zoned.any()), where)
    bad = parsed.isna()
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(
            f"{where}: line {first + FIRST_DATA_LINE}: time {text.iloc[first]!r} is neither an "
            "integer nor a date/datetime"
        )
    return _Times(parsed, False, utc, bool(text.str.fullmatch(_MONTH_ONLY).all()))


def _to_datetimes(text: pd.Series, zoned: bool, where: str) -> tuple[pd.Series, bool]:
    """Datetimes (NaT where a cell is none). Times with a zone: when every one is at the same
    local time of day (dates, or daily readings at 09:00, written with an offset), the local
    times are the series' steps, since converting them to UTC would move some by the hour that
    summer time adds; otherwise (hourly data) every time becomes UTC, one clock whatever the
    offsets."""
    if zoned:
        local = pd.to_datetime(
            text.str.replace(_ZONE, "", regex=True), errors="coerce", format="mixed"
        )
        if local.notna().all() and (local - local.dt.normalize()).nunique() == 1:
            return local, False
    try:
        parsed = pd.to_datetime(text, errors="coerce", format="mixed", utc=zoned)
    except ValueError:  # zones pandas reads but the pattern above does not know
        raise UserError(
            f"{where}: the times' zones (e.g. {text.iloc[0]!r}) cannot be read as one clock: "
            "write them as offsets, like 2024-03-31T02:00:00+02:00"
        ) from None
    if parsed.dt.tz is None:
        return parsed, False
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None), True


def detect_frequency(
    times: list[pd.Series],
    integer: bool,
    utc: bool = False,
    where: str = "time series",
    month_only: bool = False,
) -> Frequency:
    """The most common step between consecutive times of every series (each sorted; indexed
    by the file's lines)."""
    unit, month_end, date_only, day = "int", False, True, 1
    if not integer:
        every = pd.concat(times)
        date_only = bool((every.dt.normalize() == every).all())
        # a panel's series may each sit on a day of their own
        days = [monthly_day(series) for series in times] if date_only else [None]
        if None not in days:
            unit, month_end = "month", all(d == _LAST_DAY for d in days)
            if not month_end:  # the most common day: serve's example, a panel's new series
                day = max(Counter(days).items(), key=lambda item: (item[1], -item[0]))[0]
        else:
            unit = "ns"
            if date_only:
                for series in times:
                    _refuse_a_stray_day(series, where)
    probe = Frequency(unit, 1, month_end, date_only)
    diffs = Counter()
    for t in times:
        diffs.update(np.diff(probe.ordinals(t)).tolist())
    positive = {d: n for d, n in diffs.items() if d > 0}
    if not positive:
        raise UserError("time series: every series needs at least two distinct times")
    step = max(positive, key=lambda d: (positive[d], -d))  # most common; ties: the smaller
    utc = utc and not date_only
    return Frequency(
        unit, int(step), month_end, date_only, utc, day, month_only and unit == "month"
    )


def monthly_day(times: pd.Series) -> int | None:
    """The day of the month every one of these dates sits on, a month too short for it on its
    last day (the 30th: February's 28th or 29th; 31: every month's last day); None when they do
    not share one (daily readings, a stray day)."""
    days = times.dt.day.to_numpy()
    anchor = int(days.max())
    on_it = days == np.minimum(anchor, times.dt.days_in_month.to_numpy())
    if not on_it.all():
        return None
    # every date a month's last day, but not one day of each (the 30th of 30-day months only):
    # the month ends
    return _LAST_DAY if times.dt.is_month_end.all() and len(set(days)) > 1 else anchor


def _refuse_a_stray_day(times: pd.Series, where: str) -> None:
    """One series' dates nearly all on one day of the month (or its last) are monthly readings;
    the few others are mistakes, and read as days they would make the step 'every 31 days' and
    blame a good date (February's) for being off it. A month too short for the day (February
    for the 30th) takes its last day, and is no mistake."""
    ends = times.dt.is_month_end
    days = times.dt.day
    common = days.mode().iloc[0]
    for on_grid, what in (
        (ends, "the last day of its month"),
        ((days == common) | (ends & (days < common)), f"day {common}"),
    ):
        if 0.9 <= on_grid.mean() < 1:
            line = int(times.index[~on_grid.to_numpy()][0])
            raise UserError(
                f"{where}: line {line}: time {times[~on_grid].iloc[0].date().isoformat()!r} is "
                f"not on {what}, as {on_grid.mean():.0%} of the times are (monthly readings?)"
            )


def _series_day(
    g: pd.DataFrame, cols: dict[str, Any], freq: Frequency, where: str, name: str
) -> int | None:
    """A monthly series' day of the month (None for other frequencies). Detection reads a file
    as monthly only when each series has one; a history given to a monthly model must too, or
    its readings would be re-dated to some day without a word."""
    if freq.unit != "month":
        return None
    times = g["__t"]
    day = monthly_day(times)
    if day is None:
        # the day most readings sit on (a tie: the later day), and the first reading off it
        last = times.dt.days_in_month.to_numpy()
        on = {d: times.dt.day.to_numpy() == np.minimum(d, last) for d in set(times.dt.day)}
        common = max(on, key=lambda d: (on[d].sum(), d))
        line = int(g.index[~on[common]][0])
        raise UserError(
            f"{where}: {name}line {line}: time {g[cols['time']].loc[line]!r} is not on day "
            f"{common} of its month, as the other times are: a monthly model reads one reading "
            "a month, each on the same day (a shorter month on its last)"
        )
    return day


def _numbers(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """float64 values of ``column``; empty cells are NaN, any other non-number is an error."""
    cells = frame[column]
    if found := first_non_number(cells):
        first, what = found
        raise UserError(
            f"{where}: column {column!r}, line {int(frame.index[first])}: "
            f"{cells.iloc[first]!r} is not a {what}"
        )
    return pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64)


def _fill(values: np.ndarray, rule: str, where: str, what: str) -> np.ndarray:
    """Fill NaNs of a 1-D array by ``rule``; the edges take the nearest known value."""
    missing = np.isnan(values)
    if not missing.any():
        return values
    if rule == "error" or missing.all():
        raise UserError(
            f"{where}: {what} (set split.series.fill to interpolate or ffill to fill them)"
            if rule == "error"
            else f"{where}: {what}: no values at all"
        )
    known = np.flatnonzero(~missing)
    if rule == "interpolate":
        return np.interp(np.arange(len(values)), known, values[known])
    index = np.where(missing, 0, np.arange(len(values)))
    index = np.maximum.accumulate(index)
    out = values[index]
    out[: known[0]] = values[known[0]]  # before the first value: repeat it backwards
    return out


def read_series(
    frame: pd.DataFrame, cols: dict[str, Any], fill: str, where: str, freq: Frequency | None = None
) -> tuple[list[Series], Frequency, dict[str, Any]]:
    """Series (sorted by id) on a regular grid of ``freq`` (detected when None) and a report:
    rows that were out of time order, gaps filled, empty cells filled."""
    frame = frame.copy()
    frame.index = np.arange(len(frame)) + FIRST_DATA_LINE  # line numbers for messages
    parsed = _parse_times(frame[cols["time"]], where)
    if freq is not None and (freq.unit == "int") != parsed.integer:
        raise UserError(
            f"{where}: times are {'integers' if parsed.integer else 'dates'}, unlike the model's"
        )
    if freq is not None and freq.unit == "ns" and not freq.date_only and freq.utc != parsed.utc:
        # local times read as UTC (or the other way round) would be off by the offset
        raise UserError(
            f"{where}: times with UTC offsets, for a model trained on times without: drop them"
            if parsed.utc
            else f"{where}: times without UTC offsets, for a model trained on times with them "
            "(read as UTC): give each its offset, or a Z for UTC"
        )
    frame["__t"] = parsed.times.to_numpy()
    if cols["id"]:
        if frame[cols["id"]].isna().any():
            line = int(frame.index[frame[cols["id"]].isna().to_numpy()][0])
            raise UserError(f"{where}: line {line}: the series id {cols['id']!r} is empty")
        _refuse_similar_ids(frame[cols["id"]], cols["id"], where)
        groups = [(str(k), g) for k, g in frame.groupby(cols["id"], sort=True)]
    else:
        groups = [("", frame)]
    unsorted = sum(int(not g["__t"].is_monotonic_increasing) for _, g in groups)
    groups = [(k, g.sort_values("__t", kind="stable")) for k, g in groups]
    for key, g in groups:
        dup = g["__t"].duplicated(keep=False).to_numpy()
        if dup.any():
            # the first repeated time, with every line that holds it
            first = g["__t"].to_numpy()[dup][0]
            lines = sorted(g.index[g["__t"].to_numpy() == first].tolist())[:4]
            name = f" (series {key!r})" if key else ""
            raise UserError(
                f"{where}: duplicate time {g[cols['time']][dup].iloc[0]!r}{name} on lines "
                f"{lines}: each time may appear once per series"
            )
    if freq is None:
        every = [g["__t"] for _, g in groups]
        freq = detect_frequency(every, parsed.integer, parsed.utc, where, parsed.month_only)
    report: dict[str, Any] = {"unsorted_series": unsorted, "gaps": 0, "empty_cells": {}}
    out = []
    for key, g in groups:
        series, gaps, empty = _regular(g, cols, freq, fill, where, key)
        report["gaps"] += gaps
        for c, n in empty.items():
            report["empty_cells"][c] = report["empty_cells"].get(c, 0) + n
        out.append(series)
    return out, freq, report


def _refuse_similar_ids(ids: pd.Series, column: str, where: str) -> None:
    """Ids that differ only in spaces or case ('A' and 'A '), which would split one series in
    two and fill each one's gaps with made-up values."""
    if similar := similar_spellings([str(v) for v in ids.unique()]):
        raise UserError(
            f"{where}: series ids {similar[0]} in {column!r} differ only by letter case, spaces, "
            "a final '.' or how a number is written: write each series' id one way"
        )


def _regular(
    g: pd.DataFrame, cols: dict[str, Any], freq: Frequency, fill: str, where: str, key: str
) -> tuple[Series, int, dict[str, int]]:
    """One series on the full grid from its first to its last time, gaps and empty cells filled."""
    name = f"series {key!r}: " if key else ""
    ordinals = freq.ordinals(g["__t"])
    offset = ordinals - ordinals[0]
    off_grid = offset % freq.step != 0
    if off_grid.any():
        line = int(g.index[off_grid][0])
        raise UserError(
            f"{where}: {name}line {line}: time {g[cols['time']].loc[line]!r} is off the "
            f"detected frequency ({freq.describe()}; times that jitter around a step, as a "
            "logger's do, need rounding to it first)"
        )
    position = offset // freq.step
    # two times on one step of the grid (two readings in one month of a monthly model, daily
    # readings given to a monthly one): the later would silently replace the earlier
    shared = pd.Series(position).duplicated(keep=False).to_numpy()
    if shared.any():
        first = g[cols["time"]][shared].iloc[:2].sort_index()  # the pair, in the file's order
        lines, times = first.index.tolist(), first.tolist()
        raise UserError(
            f"{where}: {name}lines {lines}: times {times[0]!r} and {times[1]!r} fall on one step "
            f"({freq.describe()}): each step may hold one reading"
        )
    day = _series_day(g, cols, freq, where, name)
    length = int(position[-1]) + 1
    gaps = length - len(g)
    if gaps and fill == "error":
        missing = sorted(set(range(length)) - set(position.tolist()))[:3]
        missed = ordinals[0] + freq.step * np.asarray(missing, dtype=np.int64)
        first = freq.from_ordinals(missed, day)
        raise UserError(
            f"{where}: {name}{gaps} missing time steps ({freq.describe()}), first {first} "
            "(set split.series.fill to interpolate or ffill to fill them)"
        )
    columns = [cols["target"], *cols["covariates"]]
    values = np.full((length, len(columns)), np.nan)
    empty = {}
    for j, column in enumerate(columns):
        numbers = _numbers(g, column, where)
        empty[column] = int(np.isnan(numbers).sum())
        values[position, j] = numbers
    filled = np.isnan(values[:, 0])
    for j, column in enumerate(columns):
        values[:, j] = _fill(
            values[:, j], fill, where, f"{name}column {column!r} has empty cells or missing steps"
        )
    times = freq.from_ordinals(ordinals[0] + freq.step * np.arange(length, dtype=np.int64), day)
    return Series(key, times, values, filled, day), gaps, {c: n for c, n in empty.items() if n}
