"""Time series: our lstm, mlp and tcn (default params) against the naive and seasonal naive
forecasts and scikit-learn's Ridge on the very same lagged windows.

For each series: our split and build-dataset (chronological, train-range scaling, windows of 24
steps -> 12), then on the same train windows our three models (the train stage's function,
default params but the model name) and Ridge (alpha picked on val from a small grid). MASE and
sMAPE on val (where defaults may be chosen) and on test (reported only); train time in seconds.
Then a whole `dvc repro` of each series at the project's params, and a no-op repro.

    python bench/series.py [--only NAME ...] [--skip-e2e] [--models lstm mlp tcn]
                           [--build '{"transform": "log"}']

``--build`` sets build_dataset.series params (for every series of the run, its Ridge and its
end-to-end project too).

Prints one line per series and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, make_project, sh  # noqa: E402

# ../shared/datasets of the main checkout, or of a worktree one level further down
SHARED = (
    next(
        (p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()),
        ROOT.parent / "shared",
    )
    / "datasets"
)


def panel(series: int = 300, steps: int = 144, seed: int = 0) -> pd.DataFrame:
    """``series`` monthly series of different level, trend, season amplitude and noise."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2000-01-01", periods=steps, freq="MS").strftime("%Y-%m-%d")
    t = np.arange(steps)
    frames = []
    for i in range(series):
        level, trend = rng.uniform(50, 500), rng.uniform(-0.3, 1.0)
        amplitude, phase = rng.uniform(5, 60), rng.uniform(0, 2 * np.pi)
        y = level + trend * t + amplitude * np.sin(2 * np.pi * t / 12 + phase)
        y += rng.normal(0, rng.uniform(1, 10), steps)
        frames.append(pd.DataFrame({"store": f"s{i:03d}", "month": months, "sales": y.round(2)}))
    return pd.concat(frames, ignore_index=True)


def datasets() -> dict[str, tuple[pd.DataFrame, dict[str, Any]]]:
    out = {}
    for name in ("monthly_sunspots", "airline_passengers"):
        if (SHARED / f"{name}.csv").exists():
            out[name] = (pd.read_csv(SHARED / f"{name}.csv", dtype=str), {})
    out["panel"] = (panel(), {"id": "store"})
    return out


def prepare(frame: pd.DataFrame, split: dict[str, Any], work: Path, build: dict[str, Any]) -> Path:
    from torchstages.params.build_dataset import SeriesBuildParams
    from torchstages.params.split import SplitParams
    from torchstages.series.build import build_series
    from torchstages.series.split import split_series

    raw = work / "raw"
    raw.mkdir(parents=True)
    frame.to_csv(raw / "series.csv", index=False)
    split_series(raw, work / "splits", SplitParams.model_validate({"series": split}))
    build_series(SeriesBuildParams.model_validate(build), work / "splits", work / "processed")
    return raw


def _scores(metrics: dict[str, Any]) -> dict[str, float]:
    return {"mase": round(metrics["mase"], 4), "smape": round(metrics["smape"], 2)}


def ours(work: Path, model: str) -> dict[str, Any]:
    import torch

    from torchstages.models.saved import load_model
    from torchstages.params.train import TrainParams
    from torchstages.series.evaluate import evaluate_series
    from torchstages.training.loop import TrainOutputs, train

    out = work / model
    outputs = TrainOutputs(out / "m.safetensors", out / "m.json", out / "c.pt", out / "live")
    start = time.perf_counter()
    train(TrainParams.model_validate({"model": {"name": model}}), work / "processed", outputs)
    seconds = time.perf_counter() - start
    net, card = load_model(outputs.weights, outputs.card)
    row: dict[str, Any] = {"train_s": round(seconds, 1)}
    for split in ("val", "test"):
        metrics, _ = evaluate_series(
            split,
            net,
            card,
            work / "processed",
            work / "splits",
            out / split,
            4096,
            torch.device("cpu"),
        )
        row[split] = _scores(metrics)
        row[f"{split}_baselines"] = {k: _scores(v) for k, v in metrics["baselines"].items()}
    return row


def ridge(work: Path) -> dict[str, Any]:
    """Ridge from the flattened scaled window to the scaled horizon; alpha picked on val."""
    from sklearn.linear_model import Ridge

    from torchstages.data.store import load_series_split
    from torchstages.io import read_json
    from torchstages.series.evaluate import baselines, forecast_metrics, mase_scales, unscale
    from torchstages.series.split import read_series_splits

    processed = work / "processed"
    meta = read_json(processed / "meta.json")
    _, split = read_series_splits(work / "splits")
    values = [split.values[s][:, 0] for s in meta["series_ids"]]
    trains = [
        v[: split.bounds[s]["train"][1]] for v, s in zip(values, meta["series_ids"], strict=True)
    ]
    scales = mase_scales(trains, meta["season"])
    x, y, index = {}, {}, {}
    for name in ("train", "val", "test"):
        w, t = load_series_split(processed, name)
        x[name], y[name] = np.asarray(w).reshape(len(w), -1), np.asarray(t)
        index[name] = np.load(processed / f"{name}_index.npy")

    def score(model: Ridge, name: str) -> dict[str, float]:
        forecast = unscale(model.predict(x[name]), index[name][:, 0], meta)
        actual = baselines(values, index[name], meta["horizon"], meta["season"])["actual"]
        return _scores(forecast_metrics(forecast, actual, scales[index[name][:, 0]]))

    start = time.perf_counter()
    fits = {a: Ridge(alpha=a).fit(x["train"], y["train"]) for a in (0.01, 0.1, 1.0, 10.0, 100.0)}
    seconds = time.perf_counter() - start
    alpha = min(fits, key=lambda a: score(fits[a], "val")["mase"])
    best = fits[alpha]
    return {
        "alpha": alpha,
        "train_s": round(seconds, 2),
        "val": score(best, "val"),
        "test": score(best, "test"),
    }


def end_to_end(
    work: Path, raw: Path, split: dict[str, Any], build: dict[str, Any]
) -> dict[str, float]:
    """The project's own params.yaml through a whole dvc repro, with split.kind series and the
    three train settings its image defaults state (cnn, cross_entropy, val_accuracy) replaced by
    the series defaults (what README "Your own time series" says to run)."""
    overrides = {
        "split": {"kind": "series", "series": {**_split_defaults(), **split}},
        "train": {"model": {"name": "mlp"}, "loss": "mse", "monitor": "val_loss"},
    }
    if build:
        overrides["build_dataset"] = {"series": build}
    project = make_project(work / "e2e", raw, overrides)
    first = sh(["dvc", "repro"], project)
    noop = sh(["dvc", "repro"], project)
    metrics = json.loads((project / "metrics/test.json").read_text())
    return {
        "repro_s": round(first, 1),
        "noop_repro_s": round(noop, 2),
        "test_mase": metrics["mase"],
    }


def _split_defaults() -> dict[str, Any]:
    from torchstages.params.split import SeriesSplitParams

    return SeriesSplitParams().model_dump(mode="json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--models", nargs="*", default=["lstm", "mlp", "tcn"])
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--build", type=json.loads, default={}, help="build_dataset.series")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (frame, split) in datasets().items():
            if args.only and name not in args.only:
                continue
            work = Path(tmp) / name
            raw = prepare(frame, split, work, args.build)
            row: dict[str, Any] = {"steps": len(frame)}
            for model in args.models:
                row[f"ours {model}"] = ours(work, model)
                print(name, model, json.dumps(row[f"ours {model}"]), flush=True)
            row["Ridge"] = ridge(work)
            print(name, "Ridge", json.dumps(row["Ridge"]), flush=True)
            if not args.skip_e2e:
                row["end to end"] = end_to_end(work, raw, split, args.build)
                print(name, "e2e", json.dumps(row["end to end"]), flush=True)
            results[name] = row
    print(json.dumps(results))


if __name__ == "__main__":
    main()
