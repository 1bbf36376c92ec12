"""End to end for tables: the real dvc.yaml and stages on a generated CSV, in a temp git + DVC repo."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from conftest import copy_project
from tables_data import make_table, write_table
from test_pipeline import STAGES, commit, edit_params, init_repo, repro, run

pytestmark = pytest.mark.slow

TABLE_PARAMS = {
    "split": {"seed": 1, "table": {"drop": ["id"]}},
    "build_dataset": {},
    "train": {"seed": 3, "epochs": 8, "threads": 1},
    "validate": {},
    "test": {},
    "export": {},
}


def table_repo(root: Path, task: str) -> Path:
    repo = copy_project(root)
    (repo / "params.yaml").write_text(yaml.safe_dump(TABLE_PARAMS, sort_keys=False))
    write_table(make_table(300, task), repo / "data" / "raw")
    return init_repo(repo)


@pytest.fixture(scope="module")
def classification(tmp_path_factory) -> Path:
    return table_repo(tmp_path_factory.mktemp("table-cls"), "classification")


def test_classification_table_runs_all_six_then_nothing(classification):
    repo = classification
    assert repro(repo) == STAGES
    meta = json.loads((repo / "data/processed/meta.json").read_text())
    assert (meta["kind"], meta["task"], meta["classes"]) == (
        "table",
        "classification",
        ["high", "low"],
    )
    metrics = json.loads((repo / "metrics/test.json").read_text())
    assert metrics["accuracy"] > 0.7 and metrics["samples"] == meta["counts"]["test"]
    exported = json.loads((repo / "metrics/export.json").read_text())["formats"]
    assert set(exported) == {"onnx", "pt2", "onnx-int8"}, "every format, checked"
    for name in ("model.onnx", "model.pt2", "model.int8.onnx", "MODEL_CARD.md"):
        assert (repo / "models/export" / name).exists(), name
    parity = exported["onnx"]
    assert parity["prediction_agreement"] == 1.0
    for path in ("plots/test/confusion.csv", "plots/test/confusion.png", "reports/report.md"):
        assert (repo / path).exists(), path
    report = (repo / "reports/report.md").read_text()
    assert "classification of `target`, 2 classes" in report and "test rows" in report
    assert "## Near duplicates" in report
    assert "| metric | value | 95% interval |" in report
    assert "Intervals: Wilson score for accuracy (counts of right answers)" in report
    # a table's mistakes are rows, not files
    assert "| file |" not in report and "image" not in report
    mistakes = (repo / "plots/test/mistakes.csv").read_text().splitlines()
    assert mistakes[0] == "id,actual,predicted,probability"  # named as in predictions/test.csv
    assert all(m.startswith("line ") for m in mistakes[1:])
    assert "| row | true | predicted |" in report or "every test row was classified" in report
    assert repro(repo) == []
    commit(repo, "reference run")


def test_table_params_rerun_exactly_what_they_should(classification):
    repo = classification
    edit_params(repo, "test", top_k=2)
    assert repro(repo) == ["test"]
    # a build param that changes nothing fitted: build-dataset reruns, its outputs hash the same,
    # so train skips; test reruns only because its report lists the build_dataset params
    edit_params(repo, "build_dataset", table={"datetime": "expand"})
    assert repro(repo) == ["build-dataset", "test"]
    edit_params(repo, "build_dataset", table={"datetime": "drop"})
    assert repro(repo) == ["build-dataset", "train", "validate", "test", "export"]
    diff = json.loads(run(["dvc", "params", "diff", "--json"], repo).stdout)["params.yaml"]
    assert diff["build_dataset.table.datetime"]["new"] == "drop"


def test_table_rerun_is_byte_identical(classification):
    repo = classification
    before = (repo / "dvc.lock").read_bytes()
    run(["dvc", "repro", "-f"], repo)
    assert (repo / "dvc.lock").read_bytes() == before


def test_predict_a_csv_with_the_exported_model(classification):
    repo = classification
    rows = make_table(20, seed=5).drop(columns="target")  # no target column, new rows
    rows.loc[0, "colour"] = "purple"  # never seen in training: the 'other' index, with a warning
    path = write_table(rows, repo / "new", "rows.csv")
    out = run(["torchstages", "predict", str(path)], repo)
    table = list(csv.reader(out.stdout.splitlines()))
    assert table[0] == ["line", "predicted_target", "probability"]
    assert len(table) == 21 and {r[1] for r in table[1:]} <= {"high", "low"}
    assert "not seen in training" in out.stderr and "purple" not in out.stdout
    missing = write_table(rows.drop(columns="x1"), repo / "new", "bad.csv")
    result = run(["torchstages", "predict", str(missing)], repo, check=False)
    assert result.returncode == 2 and "missing column(s) ['x1']" in result.stderr


def test_regression_table_end_to_end(tmp_path):
    repo = table_repo(tmp_path / "table-reg", "regression")
    assert repro(repo) == STAGES
    metrics = json.loads((repo / "metrics/test.json").read_text())
    assert {"loss", "rmse", "mae", "r2", "baseline_rmse"} <= set(metrics)
    assert metrics["rmse"] < 0.6 * metrics["baseline_rmse"]  # beats predicting the train mean
    for picture in ("predicted_vs_actual.png", "residuals.png", "predictions.csv"):
        assert (repo / "plots/test" / picture).exists()
    shown = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)
    assert shown["data"]["test-predicted-vs-actual"][0]["content"]["data"]["values"]
    assert shown["data"]["rmse"][0]["content"]["data"]["values"]  # per epoch, train and val
    assert shown["data"]["plots/validate/residuals.png"]
    out = run(["torchstages", "predict", "data/raw/table.csv"], repo)
    header, first = list(csv.reader(out.stdout.splitlines()))[:2]
    assert header == ["line", "predicted_target"] and float(first[1])


def test_bad_table_input_is_one_line_before_any_work(tmp_path):
    repo = copy_project(tmp_path / "bad")
    (repo / "params.yaml").write_text(yaml.safe_dump(TABLE_PARAMS, sort_keys=False))
    raw = repo / "data" / "raw"
    raw.mkdir(parents=True)
    cases = {
        "header only": ("id,x1,target\n", "has a header but no rows"),
        "no target": ("id,x1,x2\n1,1,2\n", "no column named target"),
        "one class": ("id,x1,target\n" + "".join(f"{i},1,a\n" for i in range(9)), "only one class"),
    }
    for name, (text, message) in cases.items():
        (raw / "t.csv").write_text(text)
        result = run(["python", "stages/split.py"], repo, check=False)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], name
        assert not (repo / "data/splits").exists()
