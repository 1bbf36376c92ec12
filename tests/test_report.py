"""evaluate_split writes metrics, plot data, pictures and a report that `torchstages report` rebuilds."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from conftest import TINY_PARAMS
from torchstages.errors import UserError
from torchstages.evaluation.evaluate import EvalPaths, evaluate_split
from torchstages.evaluation.report import ReportSources, render_report
from torchstages.params.evaluate import EvaluateParams


def _evaluate(tmp_path: Path, outputs, params: EvaluateParams) -> dict:
    (tmp_path / "params.yaml").write_text(TINY_PARAMS)
    return evaluate_split(
        "test",
        params,
        EvalPaths(
            processed=tmp_path / "processed",
            splits=tmp_path / "splits",
            weights=outputs.weights,
            card=outputs.card,
            metrics=tmp_path / "metrics/test.json",
            plots_dir=tmp_path / "plots/test",
            report=tmp_path / "reports/report.md",
            params=tmp_path / "params.yaml",
            predictions=tmp_path / "predictions/test.csv",
        ),
    )


def test_evaluation_writes_every_file_and_the_report_rebuilds_byte_identical(tmp_path, trained):
    outputs, card = trained
    metrics = _evaluate(tmp_path, outputs, EvaluateParams(gallery_size=4))
    assert json.loads((tmp_path / "metrics/test.json").read_text()) == metrics
    plots = tmp_path / "plots/test"
    names = {p.name for p in plots.iterdir()}
    assert names == {
        "confusion.csv", "per_class.csv", "roc.csv", "pr.csv", "mistakes.csv", "confusion.png",
        "wrong.png",
    }  # fmt: skip
    with open(plots / "per_class.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == card["classes"]
    assert [float(r["f1"]) for r in rows] == [
        metrics["per_class"][c]["f1"] for c in card["classes"]
    ]
    with open(plots / "roc.csv") as f:
        roc = list(csv.DictReader(f))
    assert roc[0] == {"fpr": "0.0", "tpr": "0.0"} and roc[-1] == {"fpr": "1.0", "tpr": "1.0"}
    for png in ("confusion.png", "wrong.png"):
        with Image.open(plots / png) as img:
            assert img.format == "PNG" and min(img.size) >= 140

    with open(tmp_path / "predictions/test.csv") as f:
        predictions = list(csv.DictReader(f))
    with open(tmp_path / "splits/test.csv") as f:
        split = list(csv.DictReader(f))
    assert [(p["id"], p["sha256"], p["label"]) for p in predictions] == [
        (r["path"], r["sha256"], r["label"]) for r in split
    ]
    right = [p["predicted"] == p["label"] for p in predictions]
    assert sum(right) == round(metrics["accuracy"] * metrics["samples"])
    assert all(0 < float(p["p_label"]) <= 1 for p in predictions)

    report = (tmp_path / "reports/report.md").read_text()
    # the test's own files only: the defaults are the project's data/, which exists wherever
    # the pipeline has run
    sources = ReportSources(
        tmp_path / "metrics/test.json",
        outputs.card,
        tmp_path / "params.yaml",
        tmp_path / "plots",
        splits=tmp_path / "splits",
        processed=tmp_path / "processed",
    )
    assert render_report(tmp_path / "reports/report.md", sources) == report
    low, high = metrics["accuracy_ci_low"], metrics["accuracy_ci_high"]
    assert f"| accuracy | {metrics['accuracy']:.4f} | {low:.4f} to {high:.4f} |" in report
    # which interval each row has: accuracy counts right answers, the rest are resampled
    assert "Intervals: Wilson score for accuracy (counts of right answers); a percentile" in report
    assert "| `train.lr` | `0.01` |" in report and "threads" not in report
    links = re.findall(r"\]\(([^)]+\.png)\)", report)
    assert links == ["../plots/test/confusion.png", "../plots/test/wrong.png"]
    for link in links:
        assert (tmp_path / "reports" / link).exists()
    for name in card["classes"]:
        assert f"| {name} | " in report


def test_second_evaluation_is_byte_identical(tmp_path, trained):
    outputs, _ = trained
    _evaluate(tmp_path, outputs, EvaluateParams())
    files = sorted(
        p for p in tmp_path.glob("*s/**/*") if p.is_file() and "processed" not in p.parts
    )
    before = {p: p.read_bytes() for p in files}
    _evaluate(tmp_path, outputs, EvaluateParams())
    assert {p: p.read_bytes() for p in files} == before


def test_data_rebuilt_after_training_is_refused_before_anything_is_written(tmp_path, trained):
    """build-dataset rerun with other params (image size, colour, a new split: new mean/std)
    without train: scored silently wrong, or a shape error, unless refused by name."""
    from torchstages.deploy.export import export_and_verify
    from torchstages.params.export import ExportParams

    outputs, _ = trained
    meta_path = tmp_path / "processed/meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(
        json.dumps({**meta, "preprocessing": {**meta["preprocessing"], "std": [9]}})
    )
    with pytest.raises(
        UserError,
        match=r"model.json: the model was trained on data built otherwise \(preprocessing differ "
        r"from .*processed/meta.json\): rerun train",
    ):
        _evaluate(tmp_path, outputs, EvaluateParams())
    with pytest.raises(UserError, match=r"trained on data built otherwise \(preprocessing"):
        export_and_verify(
            ExportParams(), outputs.weights, outputs.card, tmp_path / "processed",
            tmp_path / "export", tmp_path / "export.json",
        )  # fmt: skip
    assert not (tmp_path / "plots").exists() and not (tmp_path / "export").exists()
    # classes renamed or reordered: the logits would be read as other classes
    classes = [*reversed(meta["classes"])]
    meta_path.write_text(json.dumps({**meta, "classes": classes}))
    with pytest.raises(UserError, match=r"trained on data built otherwise \(classes differ"):
        _evaluate(tmp_path, outputs, EvaluateParams())


def test_a_split_rerun_without_build_dataset_is_refused_before_plots_are_written(tmp_path, trained):
    outputs, _ = trained
    split_csv = tmp_path / "splits/test.csv"
    split_csv.write_text("\n".join(split_csv.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(
        UserError,
        match=r"processed: the arrays hold \d+ samples but the split lists \d+: the split changed "
        "after build-dataset",
    ):
        _evaluate(tmp_path, outputs, EvaluateParams())
    assert not (tmp_path / "plots").exists()


def test_a_broken_card_or_weights_file_is_one_line(tmp_path, trained):
    outputs, card = trained
    good_card = outputs.card.read_bytes()
    outputs.card.write_text('{"architecture": ')
    with pytest.raises(UserError, match=r"model.json: not valid JSON \(.*\): rerun the stage"):
        _evaluate(tmp_path, outputs, EvaluateParams())
    outputs.card.write_text("[]")
    with pytest.raises(UserError, match=r"model.json: not a model card"):
        _evaluate(tmp_path, outputs, EvaluateParams())
    wider = {**card["architecture"], "channels": [4, 16]}
    outputs.card.write_text(json.dumps({**card, "architecture": wider}))
    with pytest.raises(UserError, match=r"does not match the architecture .*other shape \["):
        _evaluate(tmp_path, outputs, EvaluateParams())
    outputs.card.write_bytes(good_card)
    outputs.weights.write_bytes(outputs.weights.read_bytes()[:40])
    with pytest.raises(UserError, match=r"model.safetensors: cannot read the weights"):
        _evaluate(tmp_path, outputs, EvaluateParams())


def test_report_command_refuses_a_folder_as_out(tmp_path, monkeypatch, capsys):
    from torchstages.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["report", "--out", str(tmp_path)]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err


def test_report_command_names_a_missing_file(tmp_path, monkeypatch, capsys):
    from torchstages.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: metrics/test.json: not found (run `dvc repro` first)"
    )


def test_bad_images_skipped_by_build_dataset_are_listed_in_the_report(tmp_path, image_folder):
    """on_bad_image: skip drops rows from the arrays: evaluation keeps the CSV rows aligned with
    them, and the report lists every skipped file with its reason."""
    from conftest import tiny_train_params
    from torchstages.data.build import build_dataset
    from torchstages.data.split import split_dataset
    from torchstages.params.build_dataset import BuildDatasetParams
    from torchstages.training.loop import TrainOutputs, train

    split_dataset(image_folder, tmp_path / "splits", {"train": 0.6, "val": 0.2, "test": 0.2}, 0)
    victim = (tmp_path / "splits/test.csv").read_text().splitlines()[1].split(",")[0]
    (image_folder / victim).write_bytes((image_folder / victim).read_bytes()[:50])
    params = BuildDatasetParams(image_size=8, workers=1, on_bad_image="skip")
    build_dataset(params, image_folder, tmp_path / "splits", tmp_path / "processed")
    outputs = TrainOutputs(*(tmp_path / "m" / n for n in ("w.safetensors", "c.json", "k.pt")),
                           tmp_path / "live")  # fmt: skip
    train(tiny_train_params(epochs=1), tmp_path / "processed", outputs)
    metrics = _evaluate(tmp_path, outputs, EvaluateParams())
    assert metrics["samples"] == len(_rows(tmp_path / "splits/test.csv")) - 1
    report = (tmp_path / "reports/report.md").read_text()
    assert "## Bad images skipped (1, build_dataset.on_bad_image: skip)" in report
    assert f"| {victim} | {victim.split('/')[0]} | test | cannot decode image" in report
    assert victim not in {r["file"] for r in _rows(tmp_path / "plots/test/mistakes.csv")}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_params_table_lists_what_the_kind_and_task_read():
    """The report's params: a table's leave out the image decoder's keys, a regression's and a
    forecast's the classification ones and a series' the bootstrap, an image report keeps its
    own and drops the others'."""
    import yaml

    from torchstages.evaluation.report import _params_rows

    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    runs = {
        "table": ("table", "classification"),
        "regression": ("table", "regression"),
        "series": ("series", "forecast"),
        "text": ("text", "classification"),
        "images": ("images", "classification"),
    }
    listed = {name: {key for key, _ in _params_rows(params, *run)} for name, run in runs.items()}
    image_only = {
        "build_dataset.on_bad_image",
        "build_dataset.max_pixels",
        "build_dataset.background",
        "build_dataset.image_size",
    }
    classes_only = {"train.label_smoothing", "train.class_weights", "test.top_k"}
    assert "build_dataset.table.missing" in listed["table"] and not image_only & listed["table"]
    assert classes_only <= listed["table"] and "train.scale_to_rows" in listed["table"]
    assert "train.huber_delta" in listed["regression"] and not classes_only & listed["regression"]
    assert "train.huber_delta" in listed["series"] and not image_only & listed["series"]
    assert not classes_only & listed["series"] and "test.bootstrap_seed" not in listed["series"]
    assert "build_dataset.text.min_freq" in listed["text"] and "test.top_k" in listed["text"]
    assert image_only | classes_only <= listed["images"]
    assert not {"train.huber_delta", "train.scale_to_rows"} & listed["images"]
    # the split's params change results too: the fractions everywhere, the seed where the split
    # is drawn (a series' is chronological), each kind's own
    split = {"split.train", "split.val", "split.test"}
    assert all(split <= keys for keys in listed.values())
    assert all("split.seed" in listed[name] for name in ("table", "text", "images"))
    assert "split.seed" not in listed["series"]
    assert "split.table.target" in listed["table"] and "split.series.fill" in listed["series"]
    assert "split.near_duplicate_threshold" in listed["images"]
    assert not {k for k in listed["images"] if k.startswith(("split.table", "split.text"))}
    assert "split.near_duplicates" not in listed["text"] | listed["series"]
    assert "split.kind" not in listed["images"]
