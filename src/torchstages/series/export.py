"""A forecaster as the generic export (deploy/export.py) takes it: a window of raw (unscaled)
values and the series' number in, the next ``horizon`` values in the series' own units out. The
train-range scaling of every series is inside the graph, so a deployed model cannot be fed
unscaled input; checked against PyTorch on every test window.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchstages import paths
from torchstages.data.loader import OnDevice
from torchstages.data.store import load_series_split
from torchstages.deploy.card import CardText
from torchstages.deploy.exportable import Exportable, KindExport
from torchstages.deploy.parity import ValueParity
from torchstages.evaluation.inference import predict_logits
from torchstages.series.evaluate import unscale
from torchstages.wording import listed

__all__ = ["SeriesModel", "raw_windows", "series_export", "series_exportable"]


def _scaling(card: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, F) shift and scale per series and input column; calendar columns pass unchanged."""
    shift = torch.tensor(card["scaler"]["shift"], dtype=torch.float64)
    scale = torch.tensor(card["scaler"]["scale"], dtype=torch.float64)
    extra = len(card["features"]) - shift.shape[1]
    shift = torch.cat([shift, torch.zeros(len(shift), extra, dtype=torch.float64)], 1)
    scale = torch.cat([scale, torch.ones(len(scale), extra, dtype=torch.float64)], 1)
    return shift, scale


class SeriesModel(nn.Module):
    """The trained forecaster as deployed: (N, L, F) raw window and (N,) series numbers in,
    (N, H) forecasts in the target's units out. With ``transform: log`` the graph takes the
    target's logarithm before scaling and exponentiates the forecast after."""

    def __init__(self, model: nn.Module, card: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        shift, scale = _scaling(card)
        self.register_buffer("shift", shift.float())
        self.register_buffer("scale", scale.float())
        self.log = card.get("transform", "none") == "log"

    def forward(self, window: torch.Tensor, series: torch.Tensor) -> torch.Tensor:
        shift, scale = self.shift[series], self.scale[series]  # (N, F)
        if self.log:  # the target column only; covariates and calendar pass unchanged
            window = torch.cat([torch.log(window[:, :, :1]), window[:, :, 1:]], dim=2)
        out = self.model((window - shift[:, None]) / scale[:, None])
        out = out * scale[:, :1] + shift[:, :1]  # (N, H)
        return torch.exp(out) if self.log else out


def raw_windows(windows: np.ndarray, series: np.ndarray, card: dict[str, Any]) -> np.ndarray:
    """The stored scaled windows (N, L, F) back in raw units (what a user feeds the export)."""
    shift, scale = (t.numpy() for t in _scaling(card))
    raw = np.asarray(windows, dtype=np.float64) * scale[series][:, None] + shift[series][:, None]
    if card.get("transform", "none") == "log":
        raw[:, :, 0] = np.exp(raw[:, :, 0])
    return raw


def series_exportable(model: nn.Module, card: dict[str, Any]) -> Exportable:
    lookback, features = card["lookback"], len(card["features"])
    metadata = {
        k: json.dumps(card[k], sort_keys=True)
        for k in (
            "features",
            "calendar",
            "series_ids",
            "frequency",
            "covariates",
            "lookback",
            "horizon",
            "scaler",
            "season",
        )
    }
    metadata.update(
        target=card["target"],
        time=card["time"],
        id=card["id"] or "",
        fill=card["fill"],
        transform=card.get("transform", "none"),  # cards from before the transform: none
    )
    return Exportable(
        module=SeriesModel(model, card).eval(),
        example={
            "window": torch.zeros(2, lookback, features),
            "series": torch.zeros(2, dtype=torch.long),
        },
        inputs=[
            {
                "name": "window",
                "dtype": "float32",
                "shape": [None, lookback, features],
                "doc": f"the last {lookback} steps, raw values of {', '.join(card['features'])}"
                + _calendar_doc(card["calendar"]),
            },
            {
                "name": "series",
                "dtype": "int64",
                "shape": [None],
                "doc": "the series' number in series_ids (0 for a single series)",
            },
        ],
        metadata=metadata,
        output=f"float32 (N, {card['horizon']}) forecast of {card['target']}, steps 1 to "
        f"{card['horizon']} after the window",
    )


def _calendar_doc(names: list[str]) -> str:
    """How a direct ONNX user computes the calendar inputs (predict and serve do it for you)."""
    formulas = {
        "month": "month_sin/cos = sin/cos(2 pi (month - 1) / 12)",
        "weekday": "weekday_sin/cos = sin/cos(2 pi weekday / 7), Monday = 0",
    }
    used = [formulas[n] for n in dict.fromkeys(n.split("_")[0] for n in names)]
    return f" (at each step's time: {'; '.join(used)})" if used else ""


def series_export(model: nn.Module, card: dict[str, Any], processed: Path) -> KindExport:
    """A forecaster for the generic export: every test window in raw units, forecasts compared
    in each series' train-range scale. int8: dynamic for every forecaster, the tcn too. Static
    scales are calibrated on train windows, and a trending series' test range lies beyond them:
    on airline passengers static int8 raised the test RMSE by 316% (mlp) and 113% (tcn), dynamic
    by less than 0.1%."""
    windows, targets = (np.asarray(a) for a in load_series_split(processed, "test"))
    series = np.load(processed / "test_index.npy")[:, 0]
    # as evaluation computes it: the model on the stored scaled windows, then unscaled
    scaled = predict_logits(
        model, windows, OnDevice(torch.device("cpu")), 1024, torch.device("cpu")
    )
    exp = series_exportable(model, card)
    return KindExport(
        exportable=exp,
        test={"window": raw_windows(windows, series, card).astype(np.float32), "series": series},
        reference=unscale(scaled.numpy(), series, card),
        truth=unscale(targets, series, card),
        # the scaler's scale is that of the logarithm under transform: log
        parity=ValueParity(
            np.asarray(card["scaler"]["scale"], dtype=np.float64)[series, 0],
            log=card.get("transform", "none") == "log",
        ),
        card=_card_text(card, exp),
        train=lambda: _train_inputs(card, processed),
        int8="dynamic",
    )


def _train_inputs(card: dict[str, Any], processed: Path) -> dict[str, np.ndarray]:
    """The train windows as named raw inputs (static int8's calibration)."""
    windows, _ = load_series_split(processed, "train")
    series = np.load(processed / "train_index.npy")[:, 0]
    return {"window": raw_windows(windows, series, card).astype(np.float32), "series": series}


def _card_text(card: dict[str, Any], exp: Exportable) -> CardText:
    lookback, horizon, target = card["lookback"], card["horizon"], card["target"]
    freq = card["frequency"]
    ids = card["series_ids"]
    return CardText(
        title=f"{card['architecture'].get('name', 'model')} forecaster (series)",
        data=[
            f"- kind: series; task: forecast `{target}` {horizon} steps ahead from the last "
            f"{lookback} steps",
            f"- frequency: steps of {freq['step']} {freq['unit']}; season {card['season']} steps",
            (
                f"- series ({len(ids)}): {listed([f'`{i}`' for i in ids], 20)}"
                f" (column `{card['id']}`)"
                if card["id"]
                else "- one series (no id column)"
            ),
            f"- input columns: {', '.join(f'`{c}`' for c in card['features'])} (time column "
            f"`{card['time']}`; gaps filled by {card['fill']})",
            *(
                [
                    f"- transform: log (trained on the logarithm of `{target}`; parity below "
                    "compares logarithms)"
                ]
                if card.get("transform", "none") == "log"
                else []
            ),
        ],
        details=[
            f"Output `{exp.output_name}`: {exp.output}. Each series' train-range scaling is "
            "inside the graph (its shift and scale are also in the metadata, `scaler`): feed raw "
            "values. "
            "`torchstages predict` and `serve` read a history file, take each series' last "
            f"{lookback} steps and give the {horizon} steps after its end, with their times.",
        ],
        uses=[
            f"- Forecasts the next {horizon} steps of the series it was trained on; a series it "
            "has not seen has no scaling and is refused by `predict`.",
            "- Beyond the horizon it says nothing; errors grow with the step ahead (the test "
            "stage's per-step MAE, `metrics/test.json`).",
            "- Compare it with the naive (last value) and seasonal naive forecasts in "
            "`metrics/test.json` (`baselines`, `beats_naive`): where it does not beat them, use "
            "them instead.",
            "- A point forecast, no interval; a change of regime after the training range "
            "(a new level, trend or season) is not in its data.",
            "- int8 trades a little accuracy (the RMSE change above) for a smaller file and "
            "faster CPU inference.",
        ],
        cli=[f"torchstages predict {paths.ONNX_MODEL} history.csv --output forecast.csv"],
        keys=["series_ids", "lookback", "horizon", "features", "frequency"],
        unit="windows",
    )
