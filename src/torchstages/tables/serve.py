"""The JSON side of ``torchstages serve`` for a table model: ``{"rows": [{column: cell}, ...]}``
in, per row the predicted class with its top-k probabilities (or the regressed value) out.

JSON cells become the text cells ``read_table`` gives a CSV file, then go through the same
:func:`torchstages.tables.predict.predict_frame` as ``torchstages predict``. The helpers that turn
JSON records into such a frame serve the series history too.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

from torchstages.deploy.readers import InvalidPart
from torchstages.deploy.runtime import Runner
from torchstages.errors import UserError
from torchstages.io import six_decimals
from torchstages.tables.predict import predict_frame, source_columns
from torchstages.tables.read import first_non_number, is_missing_text
from torchstages.tables.schema import BadCell

if TYPE_CHECKING:  # deploy/serve.py imports this module when it serves the kind
    from torchstages.deploy.serve import Limits

__all__ = ["TableRequest", "TableService", "check_numbers", "records_frame"]


_ROWS = (
    "one object per row: every column the model reads (GET /metadata lists them) -> a string, "
    "number, boolean or null (missing, imputed as in training); other keys are ignored"
)


class TableRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, Any]] = Field(min_length=1, description=_ROWS)


class TableService:
    """``POST /predict`` for a table model (see ``deploy/serve.py``)."""

    field = "rows"

    def __init__(self, runner: Runner, limits: Limits) -> None:
        self.runner = runner
        self.columns = source_columns(runner.metadata)
        self.schema = json.loads(runner.metadata["schema"])
        # the body with an example row of this model's columns: /docs' "try it out" then works
        example = Field(min_length=1, description=_ROWS, examples=[[self._example()]])
        self.request = create_model(
            "TableRequest", __base__=TableRequest, rows=(list[dict[str, Any]], example)
        )

    def _example(self) -> dict[str, Any]:
        """A typical row: train medians (a date from its parts' medians), the first category.
        No nulls: the OpenAPI schema drops them, and the row would lack the column."""
        row: dict[str, Any] = {}
        dates: dict[str, dict[str, int]] = {}
        for c in self.schema["numeric"]:
            if c["type"] == "numeric":
                row[c["source"]] = c["median"]
            elif c["type"] == "boolean":
                row[c["source"]] = c["median"] >= 0.5
            else:
                dates.setdefault(c["source"], {})[c["part"]] = int(c["median"])
        for name, parts in dates.items():
            day = min(parts.get("day", 1), 28)  # any month has a 28th
            row[name] = f"{parts.get('year', 2000):04d}-{parts.get('month', 1):02d}-{day:02d}"
        for c in self.schema["categorical"]:
            row[c["name"]] = c["categories"][0] if c["categories"] else ""  # "": missing
        return {c: row[c] for c in self.columns}

    def describe(self) -> dict[str, Any]:
        """/metadata: the target, the task and the columns a row needs, with their types."""
        types = {c["source"]: c["type"] for c in self.schema["numeric"]}
        categories = {c["name"]: c["categories"] for c in self.schema["categorical"]}
        return {
            "target": self.runner.metadata["target"],
            "task": self.runner.metadata["task"],
            "columns": [
                {"name": c, "type": types[c]}
                if c in types
                else {"name": c, "type": "categorical", "categories": categories[c]}
                for c in self.columns
            ],
        }

    def predict(self, body: TableRequest, k: int) -> dict[str, Any]:
        frame = records_frame(body.rows, self.columns, self.field)
        notes: list[str] = []
        try:
            # encode reads the cells as predict does, under the model's non_numeric rule
            predictions = predict_frame(self.runner, frame, self.field, k, notes)
        except BadCell as exc:  # the frame's index is the row's place in the request
            raise InvalidPart(f"{self.field}[{exc.row}].{exc.column}", exc.reason) from None
        except UserError as exc:  # anything else encode refuses: named by the request
            raise InvalidPart(self.field, str(exc).removeprefix(f"{self.field}: ")) from None
        # what predict warns about on stderr, a client sees beside the answer
        warned = {"warnings": notes} if notes else {}
        if self.runner.metadata["task"] == "regression":
            answers = [{"row": i, "prediction": v} for i, (v, _) in enumerate(predictions)]
            return {"predictions": answers, **warned}
        return {
            "predictions": [
                {
                    "row": i,
                    "prediction": label,
                    "top": [{"class": c, "probability": six_decimals(p)} for c, p in top],
                }
                for i, (label, top) in enumerate(predictions)
            ],
            **warned,
        }


def records_frame(records: list[dict[str, Any]], columns: list[str], field: str) -> pd.DataFrame:
    """``columns`` of JSON ``records`` as ``read_table`` gives a file's cells: text, or NaN where
    missing. Every record needs every column (null for a missing cell): a misspelt key would
    otherwise pass as a missing value and be imputed silently."""
    cells: dict[str, list[Any]] = {c: [] for c in columns}
    for i, record in enumerate(records):
        absent = [c for c in columns if c not in record]
        if absent:
            raise InvalidPart(
                f"{field}[{i}]",
                f"no {', '.join(map(repr, absent))} (the model reads {columns}; null is a "
                "missing cell)",
            )
        for c in columns:
            cells[c].append(_cell(record[c], f"{field}[{i}].{c}"))
    return pd.DataFrame(cells, columns=columns, dtype=object)


def _cell(value: Any, part: str) -> Any:
    """A JSON value as the text a CSV file would hold (NaN: missing)."""
    if value is None:
        return np.nan
    if isinstance(value, bool):  # before int: a bool is an int in Python
        return "true" if value else "false"
    if isinstance(value, int | float):
        value = repr(value)  # repr: the shortest text that reads back as the same float
    if not isinstance(value, str):
        raise InvalidPart(
            part, f"a JSON {type(value).__name__} is not a cell (give a string, number, "
            "boolean or null)"
        )  # fmt: skip
    # the text a CSV file would hold as missing is missing here too, or serve and predict
    # would disagree on it
    return np.nan if is_missing_text(value) else value


def check_numbers(frame: pd.DataFrame, columns: list[str], field: str) -> None:
    """A cell of a numeric column that is not a number is a 400 naming it (``rows[3].x1``), as
    the pipeline's readers refuse it in a file; so is an infinite one (1e999) or one beyond
    float32 (1e39), which would answer NaN."""
    for c in columns:
        if found := first_non_number(frame[c]):
            i, what = found
            raise InvalidPart(f"{field}[{i}].{c}", f"{frame[c].iloc[i]!r} is not a {what}")
