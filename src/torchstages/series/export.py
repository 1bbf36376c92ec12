"""Export a forecaster to ONNX: a window of raw (unscaled) values and the series' number in, the
next ``horizon`` values in the series' own units out. The train-range scaling of every series is
inside the graph, so a deployed model cannot be fed unscaled input; checked against PyTorch on
every test window.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchstages.data.store import load_series_split
from torchstages.deploy.exportable import Exportable
from torchstages.io import atomic_dir, atomic_path
from torchstages.models.saved import load_model
from torchstages.params.export import ExportParams
from torchstages.series.evaluate import unscale

__all__ = ["SeriesModel", "export_and_verify_series", "raw_windows"]


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
                "doc": f"the last {lookback} steps, raw values of {', '.join(card['features'])}",
            },
            {
                "name": "series",
                "dtype": "int64",
                "shape": [None],
                "doc": "the series' number in series_ids (0 for a single series)",
            },
        ],
        metadata=metadata,
    )


def export_and_verify_series(
    params: ExportParams,
    weights: Path,
    card_path: Path,
    processed: Path,
    export_dir: Path,
    metrics_path: Path,
) -> dict[str, Any]:
    """Export ONNX into ``export_dir``, compare ONNX Runtime with PyTorch on every test window
    (relative to the target's train-range scale), write metrics; a model that disagrees leaves
    the previous export folder as it was."""
    import onnx
    import onnxruntime as ort

    from torchstages.deploy.export import onnx_only, onnx_proto, record_onnx_parity

    onnx_only(params, "a forecaster")
    model, card = load_model(weights, card_path)
    windows, _ = load_series_split(processed, "test")
    series = np.load(processed / "test_index.npy")[:, 0]
    exp = series_exportable(model, card)
    metadata = {
        **exp.metadata,
        "kind": "series",
        "format": "onnx",
        "inputs": json.dumps(exp.inputs, sort_keys=True),
        "output": f"float32 (N, {card['horizon']}) forecast of {card['target']}, steps 1 to "
        f"{card['horizon']} after the window",
    }
    with atomic_dir(export_dir) as staging:
        with atomic_path(staging / "model.onnx") as tmp:
            onnx.save_model(onnx_proto(exp, metadata, params.opset), str(tmp))
        session = ort.InferenceSession(
            str(staging / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        raw = raw_windows(windows, series, card).astype(np.float32)
        ours = session.run(None, {"window": raw, "series": series.astype(np.int64)})[0]
        with torch.no_grad():
            reference = unscale(model(torch.from_numpy(np.array(windows))).numpy(), series, card)
        target_scale = np.asarray(card["scaler"]["scale"])[series, 0]
        relative = np.abs(ours - reference) / target_scale[:, None]
        parity = {
            "max_abs_logit_diff": float(f"{relative.max():.1e}"),
            "prediction_agreement": round(
                float((relative <= params.max_abs_diff).all(1).mean()), 6
            ),
        }
        record_onnx_parity(parity, params, export_dir, metrics_path, len(windows), "windows")
    return parity
