"""Validate/test for a time series: MAE, RMSE, sMAPE and MASE per horizon step and averaged, in
the series' own units, beside the naive (last value) and seasonal naive (the value one season
earlier) forecasts scored on the very same windows, so every report says whether the model
beats "tomorrow equals today".

MASE divides each absolute error by the series' in-sample seasonal naive error on the train
range (Hyndman & Koehler, 2006): below 1, the forecast beats what the seasonal naive forecast
achieved on the training data.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchstages.data.loader import OnDevice
from torchstages.data.store import load_series_split
from torchstages.errors import UserError
from torchstages.evaluation.inference import predict_logits
from torchstages.io import six_decimals, write_csv
from torchstages.series.split import SplitSeries, read_series_splits
from torchstages.wording import listed

__all__ = [
    "baselines",
    "draw_series",
    "evaluate_series",
    "forecast_metrics",
    "mase_scales",
    "unscaled_series",
    "unscale",
]

log = logging.getLogger(__name__)


def unscale(scaled: np.ndarray, series: np.ndarray, card: dict[str, Any]) -> np.ndarray:
    """Target values (N, H) in the series' units, from scaled ones and each row's series number
    (the scaling undone, then the transform)."""
    shift = np.asarray(card["scaler"]["shift"], dtype=np.float64)[series, 0]
    scale = np.asarray(card["scaler"]["scale"], dtype=np.float64)[series, 0]
    out = scaled.astype(np.float64) * scale[:, None] + shift[:, None]
    return np.exp(out) if card.get("transform", "none") == "log" else out


def baselines(
    values: list[np.ndarray], index: np.ndarray, horizon: int, season: int
) -> dict[str, np.ndarray]:
    """Actual values and the naive and seasonal naive forecasts, each (N, H), for windows
    ``index`` (series number, first forecast position) of the target series ``values``."""
    steps = np.arange(horizon)
    # step h (from 0) repeats the value ceil((h + 1) / season) seasons before it
    back = season * ((steps + season) // season)
    if len(index) and int(index[:, 1].min()) < int(back.max()):
        # a negative position would silently wrap around to the series' end
        raise UserError(
            f"season {season}: a window at step {int(index[:, 1].min())} has no value "
            f"{int(back.max())} steps back for the seasonal naive forecast (lower the season)"
        )
    out: dict[str, list[np.ndarray]] = {"actual": [], "naive": [], "seasonal_naive": []}
    for series, start in index.tolist():
        y = values[series]
        out["actual"].append(y[start + steps])
        out["naive"].append(np.full(horizon, y[start - 1]))
        out["seasonal_naive"].append(y[start + steps - back])
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, horizon) for k, v in out.items()}


def mase_scales(train_ranges: list[np.ndarray], season: int) -> np.ndarray:
    """Per series, the mean absolute seasonal difference of its train range (MASE's scale), or
    1 (MASE is then the MAE) for a series that repeats itself exactly each season: it has no
    scale. :func:`unscaled_series` names those."""
    scales = [float(np.abs(r[season:] - r[:-season]).mean()) for r in train_ranges]
    return np.asarray([s if s > 0 else 1.0 for s in scales])


def unscaled_series(train_ranges: list[np.ndarray], season: int) -> list[int]:
    """Which series have no MASE scale: their train range repeats exactly each season."""
    return [i for i, r in enumerate(train_ranges) if not np.any(r[season:] != r[:-season])]


def forecast_metrics(
    forecast: np.ndarray, actual: np.ndarray, scale: np.ndarray, real: np.ndarray | None = None
) -> dict[str, Any]:
    """Averaged and per-step (lists of H) errors of (N, H) forecasts; ``scale`` (N,) is each
    window's MASE scale. sMAPE is in percent (0 to 200); 0/0 counts as 0. ``real`` (N, H) marks
    the targets that were read, not filled: only those are scored (a step with none is null)."""
    real = np.ones(actual.shape, dtype=bool) if real is None else real
    error = forecast - actual
    denom = np.abs(actual) + np.abs(forecast)
    per = {
        "mae": np.abs(error),
        "rmse": error**2,
        "smape": np.divide(200 * np.abs(error), denom, out=np.zeros_like(denom), where=denom > 0),
        "mase": np.abs(error) / scale[:, None],
    }
    counts = real.sum(0)
    out: dict[str, Any] = {}
    for name, values in per.items():
        kept = np.where(real, values, 0.0)
        by_step = kept.sum(0) / np.maximum(counts, 1)
        overall = kept.sum() / max(int(counts.sum()), 1)
        if name == "rmse":
            by_step, overall = np.sqrt(by_step), np.sqrt(overall)
        out[name] = six_decimals(overall)
        out.setdefault("per_step", {})[name] = [
            six_decimals(v) if n else None for v, n in zip(by_step, counts, strict=True)
        ]
    return out


def evaluate_series(
    split: str,
    model: torch.nn.Module,
    card: dict[str, Any],
    processed: Path,
    splits_dir: Path,
    plots_dir: Path,
    batch_size: int,
    device: torch.device,
    predictions: Path | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metrics of ``split`` and the (N, H) arrays the pictures need (forecast, actual, naive,
    seasonal_naive), plus plot data and per-window predictions."""
    windows, targets = load_series_split(processed, split)
    index = np.load(processed / f"{split}_index.npy")
    out = predict_logits(
        model.to(device), np.asarray(windows), OnDevice(device), batch_size, device
    )
    _, series = read_series_splits(splits_dir)
    ids = card["series_ids"]
    values = [series.values[sid][:, 0] for sid in ids]
    season, horizon = card["season"], card["horizon"]
    arrays = baselines(values, index, horizon, season)
    arrays["forecast"] = unscale(out.numpy(), index[:, 0], card)
    trains = [v[: series.bounds[sid]["train"][1]] for v, sid in zip(values, ids, strict=True)]
    scale = mase_scales(trains, season)[index[:, 0]]
    steps = np.arange(horizon)
    made_up = np.asarray(
        [series.filled[ids[number]][start + steps] for number, start in index.tolist()], dtype=bool
    ).reshape(-1, horizon)
    real = ~made_up
    metrics = forecast_metrics(arrays["forecast"], arrays["actual"], scale, real)
    if unscaled := [ids[i] for i in unscaled_series(trains, season)]:
        named = listed([repr(i) for i in unscaled])
        log.warning(
            "%s: %s repeat%s exactly each season in the train range, so the seasonal naive "
            "forecast has no error there and MASE no scale: MASE is the MAE there",
            split,
            "the series" if ids == [""] else f"{len(unscaled)} series ({named})",
            "s" if ids == [""] else "",
        )
        metrics["mase_is_mae_for_series"] = len(unscaled)
    metrics["loss"] = six_decimals(float(((out.numpy() - np.asarray(targets)) ** 2).mean()))
    metrics["baselines"] = {
        name: forecast_metrics(arrays[name], arrays["actual"], scale, real)
        for name in ("naive", "seasonal_naive")
    }
    if made_up.any():
        # interpolated or carried values are easy to forecast: scoring them flatters every model
        metrics["filled_targets_not_scored"] = int(made_up.sum())
        log.info(
            "%s: %d of %d target values were filled (split.series.fill), not read: not scored",
            split,
            int(made_up.sum()),
            made_up.size,
        )
    arrays["actual"] = np.where(real, arrays["actual"], np.nan)
    metrics["beats_naive"] = metrics["mase"] < metrics["baselines"]["naive"]["mase"]
    metrics["beats_seasonal_naive"] = (
        metrics["mase"] < metrics["baselines"]["seasonal_naive"]["mase"]
    )
    metrics.update(samples=len(index), horizon=horizon, season=season, series=len(ids))
    _write_plot_data(plots_dir, metrics, arrays, index, series, ids)
    if predictions is not None:
        _write_predictions(predictions, arrays, index, series, ids)
    return metrics, arrays


def _write_plot_data(
    plots_dir: Path,
    metrics: dict[str, Any],
    arrays: dict[str, np.ndarray],
    index: np.ndarray,
    series: SplitSeries,
    ids: list[str],
) -> None:
    """horizon.csv: MAE per step of the model and both baselines; forecast.csv: the first
    series' range with its one-step forecasts and back-to-back full-horizon forecasts."""
    per = {"model": metrics, **metrics["baselines"]}
    write_csv(
        plots_dir / "horizon.csv",
        ["step", "model", "naive", "seasonal_naive"],
        [
            [h + 1, *(per[k]["per_step"]["mae"][h] for k in ("model", "naive", "seasonal_naive"))]
            for h in range(arrays["forecast"].shape[1])
        ],
    )
    write_csv(
        plots_dir / "forecast.csv",
        ["step", "time", "actual", "one_step", "full_horizon"],
        _forecast_rows(arrays, index, series.times[ids[0]]),
    )


def _forecast_rows(
    arrays: dict[str, np.ndarray], index: np.ndarray, times: list[str]
) -> list[list[Any]]:
    """Rows per target time of series 0: actual, the forecast one step ahead, and the forecast
    of windows placed back to back (each covering ``horizon`` steps from its own origin)."""
    horizon = arrays["forecast"].shape[1]
    rows = np.flatnonzero(index[:, 0] == 0)
    if not len(rows):
        return []
    starts = index[rows, 1]
    first, last = int(starts[0]), int(starts[-1]) + horizon
    one_step = {int(s): arrays["forecast"][r, 0] for r, s in zip(rows, starts, strict=True)}
    actual = {
        int(s) + h: arrays["actual"][r, h]
        for r, s in zip(rows, starts, strict=True)
        for h in range(horizon)
    }
    full = {}
    for r, s in zip(rows[::horizon], starts[::horizon], strict=True):
        full.update({int(s) + h: arrays["forecast"][r, h] for h in range(horizon)})
    return [
        [t - first + 1, times[t], _opt(_read(actual[t])), _opt(one_step.get(t)), _opt(full.get(t))]
        for t in range(first, last)
    ]


def _write_predictions(
    path: Path,
    arrays: dict[str, np.ndarray],
    index: np.ndarray,
    series: SplitSeries,
    ids: list[str],
) -> None:
    horizon = arrays["forecast"].shape[1]
    rows = []
    for r, (number, start) in enumerate(index.tolist()):
        times = series.times[ids[number]]
        rows += [
            [
                ids[number],
                times[start - 1],
                times[start + h],
                h + 1,
                _opt(_read(arrays["actual"][r, h])),
                six_decimals(arrays["forecast"][r, h]),
            ]
            for h in range(horizon)
        ]
    write_csv(path, ["series", "origin", "time", "step", "actual", "predicted"], rows)


def draw_series(plots_dir: Path, split: str, metrics: dict[str, Any], target: str) -> None:
    """forecast.png (actual vs one-step and full-horizon forecasts of the first series) and
    horizon.png (MAE by horizon step of the model and both baselines), from the plot data."""
    import csv

    from matplotlib.figure import Figure

    from torchstages.evaluation.figures import DPI, save_png

    with open(plots_dir / "forecast.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    fig = Figure(figsize=(10, 4), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(rows))

    def column(name: str) -> np.ndarray:
        return np.array([float(r[name]) if r[name] else np.nan for r in rows])

    ax.plot(x, column("actual"), color="black", linewidth=1.2, label="actual")
    ax.plot(x, column("one_step"), linewidth=1, label="forecast 1 step ahead")
    ax.plot(
        x,
        column("full_horizon"),
        linewidth=1,
        linestyle="--",
        label=f"forecast {metrics['horizon']} steps ahead, windows back to back",
    )
    ticks = np.linspace(0, len(rows) - 1, min(8, len(rows))).astype(int) if rows else []
    ax.set_xticks(ticks, [rows[i]["time"] for i in ticks], rotation=30, fontsize=8)
    ax.set_ylabel(target)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(
        f"{split}: actual vs forecast (MASE {metrics['mase']:.3f}, seasonal naive "
        f"{metrics['baselines']['seasonal_naive']['mase']:.3f})"
    )
    save_png(fig, plots_dir / "forecast.png")
    fig = Figure(figsize=(6, 4), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    steps = np.arange(1, metrics["horizon"] + 1)
    ax.plot(steps, metrics["per_step"]["mae"], marker="o", markersize=3, label="model")
    for name, label in (("naive", "naive (last value)"), ("seasonal_naive", "seasonal naive")):
        ax.plot(
            steps,
            metrics["baselines"][name]["per_step"]["mae"],
            marker="o",
            markersize=3,
            linestyle=":",
            label=label,
        )
    ax.set_xlabel("steps ahead")
    ax.set_ylabel(f"MAE ({target})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{split}: error by horizon step ({metrics['samples']} windows)")
    save_png(fig, plots_dir / "horizon.png")


def _read(value: float) -> float | None:
    """An actual value, or None where the split filled it (NaN here): left empty in the CSVs."""
    return None if np.isnan(value) else value


def _opt(value: float | None) -> float | str:
    return "" if value is None else six_decimals(value)
