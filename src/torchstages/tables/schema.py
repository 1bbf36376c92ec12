"""Column types and the encoding of table cells into model inputs, fitted on the train split.

One function, :func:`encode`, turns text cells into the two input arrays; build-dataset, the export
parity check and ``torchstages predict`` all call it, so a deployed model sees exactly what
training saw. Numeric inputs stay raw (NaN where missing): imputation, missing indicators and
standardisation happen inside the model (:class:`torchstages.tables.models.TableInput`), with
the train statistics stored here, so the exported graph takes raw values too.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd

from torchstages.errors import UserError
from torchstages.io import nine_digits
from torchstages.params.build_dataset import TableBuildParams
from torchstages.tables.read import (
    LOCAL_ORDER_DATE,
    decorated_numbers,
    nearly_all,
    not_a_number_of,
    out_of_range,
)
from torchstages.wording import counted

__all__ = ["MISSING", "OTHER", "BadCell", "fit_schema", "encode"]

log = logging.getLogger(__name__)

MISSING, OTHER = (
    0,
    1,
)  # categorical indices before the vocabulary: a missing cell, a rare/unseen one
_TRUE = {"true", "yes", "y", "t"}
_FALSE = {"false", "no", "n", "f"}
_DETECT_SHARE = 0.9  # this share of a column's train cells must parse for the type to be taken
_DATE_PARTS = ("year", "month", "day", "day_of_week")
# an ISO time with a UTC offset or Z after it: the date parts are the wall-clock time as written,
# so a local midnight stays its own day, and offsets that change with summer time read alike
_ZONED = re.compile(
    r"(.*\d[T ]\d\d(?::?\d\d(?::?\d\d(?:[.,]\d+)?)?)?)\s*(?:Z|[+-]\d\d(?::?\d\d)?)", re.IGNORECASE
)


# an ISO date and time followed by a zone's name or abbreviation: 2024-01-10 13:24:22 CET
_NAMED_ZONE = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?\s+[A-Za-z][A-Za-z/_+-]{1,31}"
)


class BadCell(UserError):
    """A cell the model cannot read, named by file (or request), column and line (or row):
    ``serve`` names it as ``rows[i].column`` from ``column`` and ``row``."""

    _ADVICE = (
        " (set build_dataset.table.non_numeric: missing to treat such cells as missing, or "
        "list the column in build_dataset.table.categorical)"
    )

    def __init__(self, where: str, column: str, row: Any, reason: str, advise: bool = False):
        super().__init__(
            f"{where}: column {column!r}, line {row}: {reason}" + (self._ADVICE if advise else "")
        )
        self.column, self.row, self.reason = column, row, reason


def fit_schema(
    train: pd.DataFrame, features: list[str], params: TableBuildParams, where: str
) -> dict[str, Any]:
    """Types, numeric statistics and category vocabularies from the train rows alone."""
    numeric: list[dict[str, Any]] = []
    categorical: list[dict[str, Any]] = []
    for forced, key in ((params.categorical, "categorical"), (params.numeric, "numeric")):
        for column in forced:
            if column not in features:
                raise UserError(
                    f"build_dataset.table.{key}: {column!r} is not a feature ({features})"
                )
    for name in features:
        column = train[name]
        kind = _column_type(column, name, params)
        if kind == "empty":
            log.warning("build-dataset: column %r has no value in the train split: dropped", name)
            continue
        if kind == "datetime" and params.datetime == "drop":
            log.info(
                "build-dataset: date/time column %r dropped (build_dataset.table.datetime)", name
            )
            continue
        _name_uninformative(column, name)
        if kind == "categorical":
            categorical.append(
                _fit_categorical(
                    column, name, params.min_category_count, name in params.categorical
                )
            )
        elif kind == "datetime":
            parts = _datetime_parts(column, name, params, where, report=False)
            for part in _used_parts(parts):
                numeric.append(_fit_numeric(parts[part], f"{name}.{part}", name, "datetime", part))
        else:
            # the train rows are encoded (and their cells counted) after the fit
            values = _to_numbers(column, kind, name, params, where, report=False)
            if values.isna().all() and column.notna().any():  # non_numeric: missing, every cell
                line = column.first_valid_index()
                raise BadCell(
                    where,
                    name,
                    line,
                    f"no train cell is a {'boolean' if kind == 'boolean' else 'usable number'} "
                    f"(the first: {column[line]!r}); fix its cells, or move the column from "
                    "build_dataset.table.numeric to categorical",
                )
            numeric.append(_fit_numeric(values, name, name, kind, None))
    if not numeric and not categorical:
        raise UserError(f"{where}: no usable feature column (all empty in the train split)")
    # predict reads the training file's cells as build-dataset did: "n/a" in a numeric column
    # that training took as missing is missing there too
    return {"numeric": numeric, "categorical": categorical, "non_numeric": params.non_numeric}


def _name_uninformative(column: pd.Series, name: str) -> None:
    """A column with one value, or nearly always missing, tells the model (next to) nothing:
    kept, as dropping is the user's call, but named."""
    present = column.dropna()
    if present.nunique() == 1 and len(present) == len(column):
        log.warning(
            "build-dataset: column %r holds one value (%r) in every train row: it tells the "
            "model nothing (split.table.drop leaves it out)",
            name,
            present.iloc[0],
        )
    elif len(present) < 0.05 * len(column):
        log.warning(
            "build-dataset: column %r is missing in %d of %d train rows (split.table.drop "
            "leaves it out)",
            name,
            len(column) - len(present),
            len(column),
        )


def encode(
    frame: pd.DataFrame,
    schema: dict[str, Any],
    params: TableBuildParams,
    where: str,
    advise: bool = True,
    report: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(N, F) float32 raw numbers (NaN = missing), (N, C) int64 category indices, and the count
    of cells per categorical column that fell to the 'other' index (rare or never seen).
    ``advise``: a bad cell's error names the build_dataset settings that would accept it (not
    for rows given to a trained model, where changing them means training again). ``report``:
    log how many cells ``non_numeric: missing`` read as missing (build-dataset; not every
    request to a server)."""
    missing_columns = sorted(
        {c["source"] for c in schema["numeric"]} | {c["name"] for c in schema["categorical"]}
    )
    absent = [c for c in missing_columns if c not in frame.columns]
    if absent:
        raise UserError(f"{where}: missing column(s) {absent} that the model was trained on")
    numeric = np.empty((len(frame), len(schema["numeric"])), dtype=np.float32)
    parts_cache: dict[str, dict[str, pd.Series]] = {}
    for j, col in enumerate(schema["numeric"]):
        source = frame[col["source"]]
        if col["type"] == "datetime":
            if col["source"] not in parts_cache:
                parts_cache[col["source"]] = _datetime_parts(
                    source, col["source"], params, where, advise, report
                )
            parts = parts_cache[col["source"]]
            values = parts[col["part"]]
        else:
            values = _to_numbers(source, col["type"], col["source"], params, where, advise, report)
        numeric[:, j] = values.to_numpy(dtype=np.float64)
    categorical = np.empty((len(frame), len(schema["categorical"])), dtype=np.int64)
    other: dict[str, int] = {}
    for j, col in enumerate(schema["categorical"]):
        index = {c: i + 2 for i, c in enumerate(col["categories"])}
        cells = frame[col["name"]]
        codes = np.array(
            [index.get(v, OTHER) for v in cells.fillna("\x00").tolist()], dtype=np.int64
        )
        codes[cells.isna().to_numpy()] = MISSING
        categorical[:, j] = codes
        other[col["name"]] = int((codes == OTHER).sum())
    if params.missing == "error":
        _refuse_missing(frame, numeric, categorical, schema, where)
    return numeric, categorical, other


def _column_type(column: pd.Series, name: str, params: TableBuildParams) -> str:
    if name in params.categorical:
        return "categorical"
    if name in params.numeric:
        return "numeric"
    present = column.dropna()
    if present.empty:
        return "empty"
    lowered = set(present.str.strip().str.lower())
    if lowered <= _TRUE | _FALSE:
        return "boolean"
    # a few placeholders ('?', '-') leave a numeric column numeric, and its messages name them
    if nearly_all(pd.to_numeric(present, errors="coerce").notna(), present, _DETECT_SHARE):
        padded = present.str.strip().str.fullmatch(r"0\d+")
        if padded.mean() >= 0.5:
            # 00123 is a code (a postcode, an account), and as a number it loses its zeros
            log.warning(
                "build-dataset: column %r holds whole numbers written with leading zeros "
                "(%r): read as numbers; codes? list it in build_dataset.table.categorical",
                name,
                present[padded].iloc[0],
            )
        return "numeric"
    iso = _dates(present).notna()
    if iso.mean() >= _DETECT_SHARE:
        return "datetime"
    local = present.str.strip().str.fullmatch(LOCAL_ORDER_DATE)
    named = present.str.strip().str.fullmatch(_NAMED_ZONE)
    if named.mean() >= _DETECT_SHARE:
        log.warning(
            "build-dataset: column %r holds times with a zone's name (%r): read as categories, "
            "as only an offset is read; write the offset in place of the name (+01:00, or Z for "
            "UTC) to get year, month, day and weekday columns",
            name,
            present.iloc[0],
        )
    elif local.mean() >= _DETECT_SHARE:
        log.warning(
            "build-dataset: column %r holds dates not written as ISO 8601 (%r): read as "
            "categories; write them as YYYY-MM-DD to get year, month, day and weekday columns",
            name,
            present.iloc[0],
        )
    elif (iso | local).mean() >= _DETECT_SHARE:
        log.warning(
            "build-dataset: column %r holds dates in several formats (%r, %r): read as "
            "categories; write them all as YYYY-MM-DD to get year, month, day and weekday columns",
            name,
            present[iso].iloc[0],
            present[local].iloc[0],
        )
    return "categorical"


def _to_numbers(
    column: pd.Series,
    kind: str,
    name: str,
    params: TableBuildParams,
    where: str,
    advise: bool = True,
    report: bool = True,
) -> pd.Series:
    """Cells as float64 (NaN = missing); a cell that is not a number follows ``non_numeric``
    (``report``: log how many were read as missing)."""
    if kind == "boolean":
        lowered = column.str.strip().str.lower()
        values = pd.Series(np.nan, index=column.index)
        # 1 and 0 never make a column boolean (they are numbers), but read as true and false
        # in one (a database's export of the column a model was trained on)
        values[lowered.isin(_TRUE | {"1"})] = 1.0
        values[lowered.isin(_FALSE | {"0"})] = 0.0
    else:
        parsed = pd.to_numeric(column, errors="coerce").astype(np.float64)
        # 'inf', 1e400 or 1e39 parse, but no statistic, JSON file or float32 input holds them
        values = parsed.mask(out_of_range(parsed))
    bad = column.notna() & values.isna()
    if bad.any() and params.non_numeric == "error":
        row = bad.idxmax()
        what = "boolean" if kind == "boolean" else not_a_number_of(parsed[row])
        raise BadCell(where, name, row, f"{column[row]!r} is not a {what}", advise)
    if report:
        _count_as_missing(column, bad, name, "boolean" if kind == "boolean" else "number", where)
    return values


def _count_as_missing(column: pd.Series, bad: pd.Series, name: str, what: str, where: str) -> None:
    """Say how many cells ``non_numeric: missing`` turned into missing values, and the first."""
    if bad.any():
        line = bad.idxmax()
        log.info(
            "%s: column %r: %s not a %s, read as missing (build_dataset.table.non_numeric; the "
            "first: %r on line %s)",
            where,
            name,
            counted(int(bad.sum()), "cell"),
            what,
            column[line],
            line,
        )


def _fit_numeric(
    values: pd.Series, name: str, source: str, kind: str, part: str | None
) -> dict[str, Any]:
    array = values.to_numpy(dtype=np.float64)
    present = array[~np.isnan(array)]
    if kind == "numeric" and _looks_like_an_id(present):
        # a row number or customer id as a feature lets the model learn the file's order
        log.warning(
            "build-dataset: column %r holds %d distinct integers in %d train rows: an id? "
            "(split.table.drop leaves it out)",
            name,
            len(present),
            len(array),
        )
    median = float(np.median(present)) if len(present) else 0.0
    filled = np.where(np.isnan(array), median, array)
    std = float(filled.std())
    return {
        "name": name,
        "source": source,
        "type": kind,
        "part": part,
        "median": nine_digits(median),
        "mean": nine_digits(float(filled.mean())),
        "std": nine_digits(std) if std > 1e-12 else 1.0,  # a constant column: leave it unscaled
        "indicator": bool(np.isnan(array).any()),
    }


def _looks_like_an_id(present: np.ndarray) -> bool:
    """More than 20 values, all of them integers and no two alike."""
    return (
        len(present) > 20
        and bool((present == np.round(present)).all())
        and len(np.unique(present)) == len(present)
    )


def _fit_categorical(
    column: pd.Series, name: str, min_count: int, forced: bool = False
) -> dict[str, Any]:
    """The vocabulary; ``forced``: the user listed the column as categorical, so numbers in it
    are meant as categories."""
    counts = column.dropna().value_counts()
    kept = sorted(str(v) for v, n in counts.items() if n >= min_count)
    decorated = decorated_numbers(column)
    if not forced and len(decorated):
        log.warning(
            "build-dataset: column %r holds numbers written with a unit, a currency sign, %%, "
            "parentheses for negatives or "
            "thousands separators (%r): read as categories; write plain numbers (79.5, not "
            "79.5 kg) for the model to read them as numbers",
            name,
            decorated.iloc[0],
        )
    elif len(kept) > 0.5 * max(len(column), 1) and len(kept) > 20:
        log.warning(
            "build-dataset: column %r has %d distinct values in %d train rows: an id or free "
            "text? (split.table.drop leaves it out)",
            name,
            len(kept),
            len(column),
        )
    # whether training saw this column missing: predict warns of a missing cell where it did not
    return {"name": name, "categories": kept, "missing": bool(column.isna().any())}


def _datetime_parts(
    column: pd.Series,
    name: str,
    params: TableBuildParams,
    where: str,
    advise: bool = True,
    report: bool = True,
) -> dict[str, pd.Series]:
    """Year, month, day, weekday and hour of ISO 8601 dates; a cell that is not one follows
    ``non_numeric``, as a non-number does in a numeric column."""
    dates = _dates(column)
    bad = column.notna() & dates.isna()
    if bad.any() and params.non_numeric == "error":
        row = bad.idxmax()
        reason = f"{column[row]!r} is not a date (YYYY-MM-DD, maybe with a time)"
        raise BadCell(where, name, row, reason, advise)
    if report:
        _count_as_missing(column, bad, name, "date", where)
    parts = {p: getattr(dates.dt, p).astype(np.float64) for p in _DATE_PARTS}
    parts["hour"] = dates.dt.hour.astype(np.float64)
    return parts


def _dates(cells: pd.Series) -> pd.Series:
    """ISO 8601 dates and times as written, a UTC offset after a time set aside; NaT where a
    cell is none."""
    written = cells.str.strip().str.replace(_ZONED, r"\1", regex=True)
    try:
        return pd.to_datetime(written, errors="coerce", format="ISO8601")
    except ValueError:  # an offset in a form the pattern missed, mixed with others: per cell
        return written.map(_one_date, na_action="ignore").astype("datetime64[ns]")


def _one_date(cell: str) -> pd.Timestamp:
    stamp = pd.to_datetime(cell, errors="coerce", format="ISO8601")
    return stamp.tz_localize(None) if stamp is not pd.NaT and stamp.tzinfo else stamp


def _used_parts(parts: dict[str, pd.Series]) -> list[str]:
    """Year, month, day, day of week; the hour only when some time is not midnight."""
    hour = parts["hour"]
    return [*_DATE_PARTS, *(["hour"] if (hour.fillna(0) != 0).any() else [])]


def _refuse_missing(
    frame: pd.DataFrame,
    numeric: np.ndarray,
    categorical: np.ndarray,
    schema: dict[str, Any],
    where: str,
) -> None:
    for values, cols in (
        (np.isnan(numeric), schema["numeric"]),
        (categorical == MISSING, schema["categorical"]),
    ):
        if values.any():
            i, j = np.argwhere(values)[0]
            reason = (
                "missing value (build_dataset.table.missing is error; impute fills it from the "
                "train split)"
            )
            raise BadCell(where, cols[j].get("source", cols[j]["name"]), frame.index[i], reason)
