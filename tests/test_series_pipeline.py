"""End to end for time series: the real dvc.yaml and stages on a generated sine + trend + noise
series (known period 12), in a temp git + DVC repo."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from conftest import copy_project
from series_data import make_series, write_series
from test_pipeline import STAGES, commit, edit_params, init_repo, repro, run

pytestmark = pytest.mark.slow

SERIES_PARAMS = {
    "split": {"kind": "series"},
    "build_dataset": {"series": {"lookback": 24, "horizon": 6}},
    "train": {"seed": 3, "epochs": 15, "threads": 1},  # the series defaults: mlp, mse, val_loss
    "validate": {},
    "test": {},
    "export": {},
}


def series_repo(root: Path) -> Path:
    repo = copy_project(root)
    (repo / "params.yaml").write_text(yaml.safe_dump(SERIES_PARAMS, sort_keys=False))
    write_series(make_series(400), repo / "data" / "raw")
    return init_repo(repo)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return series_repo(tmp_path_factory.mktemp("series"))


def test_series_runs_all_six_beats_the_naive_forecasts_then_nothing(repo):
    assert repro(repo) == STAGES
    summary = json.loads((repo / "data/splits/summary.json").read_text())
    assert summary["kind"] == "series" and summary["leakage_check"].startswith("passed")
    meta = json.loads((repo / "data/processed/meta.json").read_text())
    assert (meta["season"], meta["horizon"]) == (12, 6)  # the period, found from the train range
    metrics = json.loads((repo / "metrics/test.json").read_text())
    assert {"loss", "mae", "rmse", "smape", "mase"} <= set(metrics)
    assert len(metrics["per_step"]["mae"]) == 6 and metrics["samples"] == meta["counts"]["test"]
    # noise sd 0.3 on a known sine + trend: far better than both naive forecasts
    assert metrics["mase"] < 0.6 * metrics["baselines"]["seasonal_naive"]["mase"]
    assert metrics["mae"] < 0.5 and metrics["beats_naive"] and metrics["beats_seasonal_naive"]
    exported = json.loads((repo / "metrics/export.json").read_text())["formats"]
    assert set(exported) == {"onnx", "pt2", "onnx-int8"}, "every format, checked"
    for name in ("model.onnx", "model.pt2", "model.int8.onnx", "MODEL_CARD.md"):
        assert (repo / "models/export" / name).exists(), name
    parity = exported["onnx"]
    assert parity["prediction_agreement"] == 1.0
    for path in ("plots/test/forecast.png", "plots/test/horizon.png", "plots/train/curves.png"):
        assert (repo / path).exists(), path
    report = (repo / "reports/report.md").read_text()
    assert "## Against naive forecasts" in report and "The model beats the seasonal naive" in report
    assert "| metric | value |\n|---|---|\n" in report and "95% interval" not in report
    shown = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)
    for plot in ("test-forecast", "test-error-by-horizon", "mae"):
        assert shown["data"][plot][0]["content"]["data"]["values"], plot
    assert shown["data"]["plots/validate/forecast.png"]
    assert repro(repo) == []
    commit(repo, "reference run")


def test_series_params_rerun_exactly_what_they_should(repo):
    edit_params(repo, "test", batch_size=7)
    assert repro(repo) == ["test"]
    # the stated default changes nothing fitted: build-dataset's outputs hash the same, train
    # skips; test reruns only because its report lists the build_dataset params
    edit_params(repo, "build_dataset", series={"lookback": 24, "horizon": 6, "scaler": "standard"})
    assert repro(repo) == ["build-dataset", "test"]


def test_series_rerun_is_byte_identical(repo):
    before = (repo / "dvc.lock").read_bytes()
    run(["dvc", "repro", "-f"], repo)
    assert (repo / "dvc.lock").read_bytes() == before
    # the series' predictions file pairs window by window (the workspace's test predictions
    # differ from the committed run's after the earlier param edits: compare the commit itself)
    verdict = run(["torchstages", "compare", "HEAD", "HEAD"], repo).stdout
    assert "HEAD vs HEAD on test" in verdict and "MAE" in verdict
    assert "0 windows got closer, 0 windows got further" in verdict


def test_predict_the_next_steps_after_a_history(repo):
    history = make_series(400).iloc[:250]
    path = write_series(history, repo / "new", "history.csv")
    out = run(["torchstages", "predict", "models/export/model.onnx", str(path)], repo)
    rows = list(csv.reader(out.stdout.splitlines()))
    assert rows[0] == ["time", "step", "predicted_value"]
    assert [r[0] for r in rows[1:]] == [str(t) for t in range(250, 256)]
    # the model knows the sine: its forecasts follow the true curve within the noise
    truth = make_series(400, noise=0.0)["value"].iloc[250:256].tolist()
    assert all(abs(float(r[2]) - y) < 1.0 for r, y in zip(rows[1:], truth, strict=True))
    short = write_series(history.iloc[:10], repo / "new", "short.csv")
    result = run(["torchstages", "predict", str(short)], repo, check=False)
    assert result.returncode == 2 and "the model reads the last 24" in result.stderr


def test_bad_series_input_stops_the_stage_with_one_line(tmp_path):
    """(The other bad inputs, in-process, in test_series.py.)"""
    repo = copy_project(tmp_path / "bad")
    (repo / "params.yaml").write_text(yaml.safe_dump(SERIES_PARAMS, sort_keys=False))
    series = make_series(100)
    write_series(series.iloc[[0, 1, 1, 2, 3]], repo / "data" / "raw")
    result = run(["python", "stages/split.py"], repo, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "duplicate time '1'" in lines[0]
    assert not (repo / "data/splits").exists()
