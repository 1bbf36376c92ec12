"""The JSON side of ``torchstages serve`` for a forecaster: ``{"history": [{time, target,
covariates, id}, ...]}`` in, the next ``horizon`` values of each series with their times out,
through the same :func:`torchstages.series.predict.forecast_frame` as ``torchstages predict``."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

from torchstages.deploy.readers import InvalidPart
from torchstages.deploy.runtime import Runner
from torchstages.errors import UserError
from torchstages.series.predict import forecast_frame, series_columns
from torchstages.series.read import Frequency
from torchstages.tables.read import FIRST_DATA_LINE
from torchstages.tables.serve import check_numbers, records_frame

if TYPE_CHECKING:  # deploy/serve.py imports this module when it serves the kind
    from torchstages.deploy.serve import Limits

__all__ = ["SeriesRequest", "SeriesService"]


_HISTORY = (
    "one object per time step: the time, the target, every covariate and, for a panel, the "
    "series id (GET /metadata names them); at least lookback steps per series, in any order; "
    "the forecast starts after each series' last time"
)


class SeriesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    history: list[dict[str, Any]] = Field(min_length=1, description=_HISTORY)


class SeriesService:
    """``POST /predict`` for a forecaster (see ``deploy/serve.py``); ``top_k`` does not apply."""

    field = "history"

    def __init__(self, runner: Runner, limits: Limits) -> None:
        meta = runner.metadata
        self.runner = runner
        self.cols = series_columns(meta)
        self.ids = set(json.loads(meta["series_ids"]))
        self.freq = Frequency.from_dict(json.loads(meta["frequency"]))
        self.columns = [
            c
            for c in (
                self.cols["id"],
                self.cols["time"],
                self.cols["target"],
                *self.cols["covariates"],
            )
            if c
        ]
        # the body with an example history in this model's columns: /docs' "try it out" works
        example = Field(min_length=1, description=_HISTORY, examples=[self._example()])
        self.request = create_model(
            "SeriesRequest", __base__=SeriesRequest, history=(list[dict[str, Any]], example)
        )

    def _example(self) -> list[dict[str, Any]]:
        """``lookback`` steps of the first series, flat at its train-range shift (its mean or
        minimum), ending at an arbitrary time on the model's frequency."""
        meta = self.runner.metadata
        lookback = json.loads(meta["lookback"])
        start = {"int": 0, "month": 2024 * 12, "ns": 1_704_067_200 * 10**9}[self.freq.unit]
        ordinals = start + self.freq.step * np.arange(lookback, dtype=np.int64)
        shift = json.loads(meta["scaler"])["shift"][0]  # target, then covariates
        values = dict(zip([self.cols["target"], *self.cols["covariates"]], shift, strict=True))
        first = {self.cols["id"]: json.loads(meta["series_ids"])[0]} if self.cols["id"] else {}
        return [
            {**first, self.cols["time"]: time, **values}
            for time in self.freq.from_ordinals(ordinals)
        ]

    def describe(self) -> dict[str, Any]:
        """/metadata: the columns a history row needs, the window and the frequency."""
        meta = self.runner.metadata
        return {
            **self.cols,
            "lookback": json.loads(meta["lookback"]),
            "horizon": json.loads(meta["horizon"]),
            "frequency": {"description": self.freq.describe(), **self.freq.to_dict()},
            "fill": meta["fill"],
            "series_ids": json.loads(meta["series_ids"]) if self.cols["id"] else [],
        }

    def predict(self, body: SeriesRequest, k: int) -> dict[str, Any]:
        frame = records_frame(body.history, self.columns, self.field)
        for key in ("time", "id"):
            column = self.cols[key]
            if column and frame[column].isna().any():
                i = int(np.flatnonzero(frame[column].isna().to_numpy())[0])
                raise InvalidPart(f"history[{i}].{column}", f"the {key} is empty")
        check_numbers(frame, [self.cols["target"], *self.cols["covariates"]], self.field)
        if self.cols["id"]:
            unknown = ~frame[self.cols["id"]].isin(self.ids)
            if unknown.any():
                i = int(np.flatnonzero(unknown.to_numpy())[0])
                raise InvalidPart(
                    f"history[{i}].{self.cols['id']}",
                    f"series {frame[self.cols['id']].iloc[i]!r} was not in training "
                    "(GET /metadata lists series_ids)",
                )
        notes: list[str] = []
        try:
            forecasts = forecast_frame(self.runner, frame, self.field, notes)
        except UserError as exc:  # too short, duplicate or off-grid times, gaps the fill refuses
            message = _entries(str(exc).removeprefix(f"{self.field}: "))
            entry = re.match(r"(history\[\d+\]): (.*)", message)  # the entry it names
            raise InvalidPart(*(entry.groups() if entry else (self.field, message))) from None
        return {
            "forecasts": [
                {
                    "series": f.series if self.cols["id"] else None,
                    "forecast": [
                        {"step": step, "time": time, "value": value}
                        for step, (time, value) in enumerate(zip(f.times, f.values, strict=True), 1)
                    ],
                }
                for f in forecasts
            ],
            # what predict warns about on stderr, a client sees beside the answer
            **({"warnings": notes} if notes else {}),
        }


def _entries(message: str) -> str:
    """``read_series`` names a file's lines (the header is line 1): here they are history
    entries, counted from 0 (``line 5`` -> ``history[3]``, ``lines [3, 4]`` -> ``[history[1],
    history[2]]``)."""

    def renumber(match: re.Match) -> str:
        return re.sub(
            r"\d+", lambda n: f"history[{int(n.group()) - FIRST_DATA_LINE}]", match.group(1)
        )

    return re.sub(r"\blines? (\[[\d, ]+\]|\d+)", renumber, message)
