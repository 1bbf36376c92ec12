"""Predict a table's target with an exported model (``.onnx``, ``.int8.onnx`` or ``.pt2``): rows
in, one prediction per row out, encoded by the very function build-dataset used. The rows come
from a CSV/Parquet file (``torchstages predict``) or from JSON (``torchstages serve``, see
``tables/serve.py``); both go through :func:`predict_frame`, so they cannot disagree. No torch
here on the ONNX path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from torchstages.deploy.runtime import Runner, run_batched, top_k_cells, top_k_header, top_k_rows
from torchstages.errors import UserError
from torchstages.io import six_decimals
from torchstages.params.build_dataset import TableBuildParams
from torchstages.tables.read import read_table
from torchstages.tables.schema import BadCell, encode
from torchstages.wording import counted, listed

__all__ = [
    "Prediction",
    "predict_frame",
    "predict_table",
    "source_columns",
    "unfamiliar",
]

log = logging.getLogger(__name__)
_BATCH = 4096

# per row: the predicted class (with the top classes and their probabilities, best first) or,
# for a regressor, the predicted value (and no classes)
Prediction = tuple[str | float, list[tuple[str, float]]]


def source_columns(metadata: dict[str, str]) -> list[str]:
    """The table columns the model reads (a date column once, though it feeds several inputs)."""
    schema = json.loads(metadata["schema"])
    numeric = [c["source"] for c in schema["numeric"]]
    return list(dict.fromkeys([*numeric, *(c["name"] for c in schema["categorical"])]))


def predict_frame(
    runner: Runner, frame: pd.DataFrame, where: str, k: int = 1, notes: list[str] | None = None
) -> list[Prediction]:
    """One prediction per row of ``frame`` (cells as text or NaN, as ``read_table`` gives them).

    Extra columns are ignored, a missing trained column is an error naming it; unseen
    categories take the 'other' index. What the model never saw is logged as a warning and,
    when ``notes`` is given, added to it (serve returns them with the answer).
    """
    schema = json.loads(runner.metadata["schema"])
    # missing cells are imputed as in training; a non-number in a numeric column is an error
    # models exported before the schema recorded non_numeric were trained with its default
    read_as = TableBuildParams(non_numeric=schema.get("non_numeric", "error"))
    numeric, categorical, _ = encode(frame, schema, read_as, where, advise=False)
    for note in unfamiliar(frame, numeric, schema):
        log.warning("predict: %s", note)
        if notes is not None:
            notes.append(note)
    feeds = {"numeric": numeric, "categorical": categorical}
    out = run_batched(runner, {i["name"]: feeds[i["name"]] for i in runner.inputs}, _BATCH)
    _refuse_overflow(out, numeric, schema, frame, where)
    if runner.metadata["task"] == "regression":
        return [(six_decimals(v), []) for v in out[:, 0]]
    return [(top[0][0], top) for top in top_k_rows(out, runner.classes, k)]


def _refuse_overflow(
    out: np.ndarray, numeric: np.ndarray, schema: dict, frame: pd.DataFrame, where: str
) -> None:
    """A row whose outputs are not finite (a value within float32's range but so far from the
    train mean that a layer overflows: -3e38) would answer NaN or null: refused, naming its
    cell farthest from the train mean in standard deviations."""
    bad = ~np.isfinite(out).reshape(len(out), -1).all(axis=1)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    cols = schema["numeric"]
    mean = np.array([c["mean"] for c in cols], dtype=np.float64)
    std = np.array([c["std"] for c in cols], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        distance = np.nan_to_num(np.abs((numeric[i].astype(np.float64) - mean) / std), nan=0.0)
    j = int(np.argmax(distance))
    raise BadCell(
        where,
        cols[j]["source"],
        frame.index[i],
        f"{frame[cols[j]['source']].iloc[i]!r} is {distance[j]:.3g} standard deviations from "
        "the train mean: the model's output overflows",
    )


def unfamiliar(frame: pd.DataFrame, numeric: np.ndarray, schema: dict) -> list[str]:
    """What the model never saw in training: categories outside its vocabulary (they take the
    'other' index) and missing values in columns that had none (imputed, but never learned):
    empty cells, and cells that ``non_numeric: missing`` read as missing."""
    notes = []
    unseen = []
    for col in schema["categorical"]:
        cells = frame[col["name"]].dropna()
        new = cells[~cells.isin(col["categories"])]
        if len(new):
            values = list(dict.fromkeys(new.tolist()))
            shown = listed([repr(v) for v in values])
            unseen.append(f"{col['name']!r} in {counted(len(new), 'row')} ({shown})")
    if unseen:
        notes.append(f"categories not seen in training, treated as 'other': {'; '.join(unseen)}")
    missing: dict[str, int] = {}  # per source column: a date's parts are missing together
    for j, col in enumerate(schema["numeric"]):
        if not col["indicator"]:
            n = int(np.isnan(numeric[:, j]).sum())
            missing[col["source"]] = max(missing.get(col["source"], 0), n)
    gaps = [f"{c!r} in {counted(n, 'row')}" for c, n in missing.items() if n]
    if gaps:
        notes.append(
            "missing values where training had none, filled with the train median: "
            + "; ".join(gaps)
        )
    # a model from before training's missing cells were recorded per category column: no note
    empty = {
        col["name"]: int(frame[col["name"]].isna().sum())
        for col in schema["categorical"]
        if col.get("missing") is False
    }
    if blanks := [f"{c!r} in {counted(n, 'row')}" for c, n in empty.items() if n]:
        notes.append(
            "missing categories where training had none, given the missing index it never "
            "learned: " + "; ".join(blanks)
        )
    return notes


def predict_table(
    runner: Runner, table: Path, k: int = 1, keep: Sequence[str] = ()
) -> tuple[list[str], list[list]]:
    """(header, rows): the file's line number, the cells of the ``keep`` columns as the file
    has them (an id to join the predictions back on; a missing cell stays empty) and the
    prediction; for classes its probability, and ``k`` > 1 adds the next classes and theirs."""
    # the model's numeric columns: '0,3' beside a typo is a number there, and the typo is named
    schema = json.loads(runner.metadata["schema"])
    frame = read_table(
        table, numbers=[c["name"] for c in schema["numeric"] if c["type"] == "numeric"]
    )
    absent = [c for c in keep if c not in frame.columns]
    if absent:
        raise UserError(f"{table}: --keep names column(s) {absent} that it does not have")
    predictions = predict_frame(runner, frame, str(table), k)
    first = [[n, *cells] for n, *cells in frame[list(keep)].fillna("").itertuples()]
    column = f"predicted_{runner.metadata['target']}"
    if runner.metadata["task"] == "regression":
        header, cells = [column], [[v] for v, _ in predictions]
    else:
        header, cells = top_k_header(column, k), [top_k_cells(top) for _, top in predictions]
    return ["line", *keep, *header], [a + b for a, b in zip(first, cells, strict=True)]
