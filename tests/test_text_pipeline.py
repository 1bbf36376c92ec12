"""End to end for texts: the real dvc.yaml and stages on a generated 3-class text table, in a
temp git + DVC repo; the kind's default model (textcnn), export parity and predict --text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from conftest import copy_project
from test_pipeline import STAGES, commit, edit_params, init_repo, repro, run
from text_data import make_texts, write_texts

pytestmark = pytest.mark.slow

TEXT_PARAMS = {
    "split": {"seed": 1, "kind": "text"},
    "build_dataset": {"text": {"min_freq": 1}},
    "train": {"seed": 3, "epochs": 10, "batch_size": 16, "threads": 1},
    "validate": {"bootstrap_resamples": 100},
    "test": {"bootstrap_resamples": 100},
    "export": {},
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = copy_project(tmp_path_factory.mktemp("texts"))
    (repo / "params.yaml").write_text(yaml.safe_dump(TEXT_PARAMS, sort_keys=False))
    write_texts(make_texts(300), repo / "data" / "raw")
    return init_repo(repo)


def test_texts_run_all_six_then_nothing(repo):
    assert repro(repo) == STAGES
    meta = json.loads((repo / "data/processed/meta.json").read_text())
    assert (meta["kind"], meta["classes"]) == ("text", ["food", "sport", "weather"])
    card = json.loads((repo / "models/model.json").read_text())
    assert card["architecture"]["name"] == "textcnn" and card["tokenizer"] == meta["tokenizer"]
    metrics = json.loads((repo / "metrics/test.json").read_text())
    assert metrics["accuracy"] > 0.8 and metrics["samples"] == meta["counts"]["test"]
    exported = json.loads((repo / "metrics/export.json").read_text())["formats"]
    assert set(exported) == {"onnx", "pt2", "onnx-int8"}, "every format, checked"
    for name in ("model.onnx", "model.pt2", "model.int8.onnx", "MODEL_CARD.md"):
        assert (repo / "models/export" / name).exists(), name
    parity = exported["onnx"]
    assert parity["prediction_agreement"] == 1.0 and metrics["samples"] > 0
    report = (repo / "reports/report.md").read_text()
    assert "test texts" in report and "build_dataset.text.min_freq" in report
    assert "classification of `label`" in report
    assert "build_dataset.image_size" not in report and "train.augment" not in report
    for path in (
        "plots/test/confusion.png",
        "plots/test/wrong_texts.csv",
        "plots/train/curves.png",
    ):
        assert (repo / path).exists(), path
    assert repro(repo) == []
    commit(repo, "reference run")


def test_text_params_rerun_exactly_what_they_should(repo):
    # a vocabulary limit no word of these texts is under: build-dataset reruns and builds the
    # same files, so train and after do not (only the report lists the new value)
    meta = (repo / "data/processed/meta.json").read_bytes()
    edit_params(repo, "build_dataset", text={"min_freq": 2})
    assert repro(repo) == ["build-dataset", "test"]
    assert (repo / "data/processed/meta.json").read_bytes() == meta
    diff = json.loads(run(["dvc", "params", "diff", "--json"], repo).stdout)["params.yaml"]
    assert (
        diff["build_dataset.text.min_freq"]["old"],
        diff["build_dataset.text.min_freq"]["new"],
    ) == (1, 2)
    # a tokenizer param: the vocabulary changes (The and the), so all after split reruns
    edit_params(repo, "build_dataset", text={"min_freq": 2, "lowercase": False})
    assert repro(repo) == ["build-dataset", "train", "validate", "test", "export"]
    assert (
        json.loads((repo / "data/processed/meta.json").read_text())["tokenizer"]
        != json.loads(meta)["tokenizer"]
    )


def test_text_rerun_is_byte_identical(repo):
    before = (repo / "dvc.lock").read_bytes()
    run(["dvc", "repro", "-f"], repo)  # every stage again: dvc.lock holds every output's hash
    assert (repo / "dvc.lock").read_bytes() == before


def test_predict_raw_strings_with_the_exported_model(repo):
    (repo / "new.txt").write_text("the forecast says rain and wind\n\nbake the garlic bread\n")
    out = run(
        ["torchstages", "predict", "--text", "the team scored a goal", "new.txt"], repo
    ).stdout
    rows = list(csv.reader(out.splitlines()))
    assert rows[0] == ["input", "predicted_label", "probability"]
    assert [r[:2] for r in rows[1:]] == [
        ["text 1", "sport"],
        ["new.txt:1", "weather"],
        ["new.txt:3", "food"],
    ]


def test_bad_text_file_is_one_line_before_any_work(tmp_path):
    repo = copy_project(tmp_path / "bad")
    (repo / "params.yaml").write_text(yaml.safe_dump(TEXT_PARAMS, sort_keys=False))
    (repo / "data/raw").mkdir(parents=True)
    (repo / "data/raw/t.csv").write_bytes(b"text,label\nhello,a\ncaf\xe9 au lait,b\n")
    result = run(["python", "stages/split.py"], repo, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "line 3 is not valid UTF-8" in lines[0]
    assert not (repo / "data/splits").exists()
