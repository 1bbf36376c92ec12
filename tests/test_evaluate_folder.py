"""`torchstages evaluate`: an exported classifier scored on a labelled folder of class folders,
with the numbers the model itself gives on the same images, and one clear line for a folder it
cannot read."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, make_image_folder
from torchstages.data.store import load_split
from torchstages.deploy.labelled import labelled_files, score
from torchstages.deploy.readers import reader_for
from torchstages.deploy.runtime import load_runner
from torchstages.errors import UserError


def cli(*args: str, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "torchstages.cli", "evaluate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": str(Path(sys.executable).parent)},
    )


@pytest.fixture(scope="module")
def runner(deployed):
    return load_runner(deployed / "export/model.onnx")


def test_scores_are_the_models_own_on_the_stored_arrays(deployed, runner):
    """Every image of the project's raw folder, as class folders: what evaluate scores is what
    the model answers on the arrays build-dataset stored for the same files."""
    reader = reader_for(runner.metadata)
    sources, labels = labelled_files(deployed / "raw", runner.classes, reader, [])
    scored = score(runner, reader, sources, labels, batch_size=5)
    arrays, stored_labels, paths = [], [], []
    for split in ("train", "val", "test"):
        images, split_labels = load_split(deployed / "processed", split)
        arrays.append(np.asarray(images))
        stored_labels.append(np.asarray(split_labels))
        with open(deployed / f"splits/{split}.csv") as f:
            paths += [str(deployed / "raw" / row["path"]) for row in csv.DictReader(f)]
    logits = runner.run({"pixels": np.concatenate(arrays)})
    order = [paths.index(s) for s in scored.sources]
    assert len(scored.sources) == 36 and not scored.failed
    assert np.array_equal(scored.labels, np.concatenate(stored_labels)[order])
    assert np.allclose(scored.logits, logits[order], atol=1e-5)


def test_cli_prints_and_writes_metrics_and_per_file_predictions(deployed, tmp_path):
    folder = tmp_path / "new"
    shutil.copytree(deployed / "raw", folder)
    for png in sorted((folder / "class0").iterdir())[:6]:  # 6, 13 and 11: class1 is the majority
        png.unlink()
    # a class2 image filed under class1: one answer is wrong, for the gallery of mistakes
    (folder / "class2" / "000.png").rename(folder / "class1" / "moved.png")
    (folder / "class0" / "notes.txt").write_text("not an image")
    (folder / "class1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = tmp_path / "out"
    result = cli(
        str(deployed / "export/model.onnx"),
        str(folder),
        "--output",
        str(out / "metrics.json"),
        "--predictions",
        str(out / "predictions.csv"),
        "--resamples",
        "200",
        "--splits",
        str(deployed / "splits"),
        "--plots",
        str(out / "plots"),
    )
    assert result.returncode == 1, result.stderr  # one file could not be decoded
    assert "31 images in 3 class folders" in result.stdout
    assert "accuracy 1.0000" in result.stdout or "accuracy 0." in result.stdout
    assert "1 file in the folders given is not an image, left out" in result.stderr
    assert "broken.png" in result.stderr and "1 of 31 files could not be decoded" in result.stderr
    text = (out / "metrics.json").read_text()
    metrics = json.loads(text)
    assert list(metrics) == sorted(metrics) and metrics["samples"] == 30
    assert metrics["failed"] == 1 and metrics["accuracy_ci_low"] <= metrics["accuracy"]
    assert metrics["baseline_accuracy"] == pytest.approx(13 / 30, abs=1e-6)
    assert metrics["not_images"] == 1 and metrics["folder"] == str(folder)
    # copies of the project's own images: every scored one is a train, val or test file
    assert sum(metrics["same_bytes_as"].values()) == 30 and metrics["same_bytes_as"]["train"]
    train_val = metrics["same_bytes_as"]["train"] + metrics["same_bytes_as"]["val"]
    assert f"warning: {train_val} of these files have the same bytes as files in" in result.stderr
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 31 and rows[-1]["error"] and rows[-1]["path"].endswith("broken.png")
    correct = sum(int(r["correct"]) for r in rows[:-1])
    assert correct / 30 == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert metrics["per_class"]["class1"]["recall"] < 1  # the moved image
    for name in ("confusion.png", "wrong.png"):
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_folder_it_cannot_read_is_one_line(deployed, tmp_path):
    model = str(deployed / "export/model.onnx")
    unknown = make_image_folder(tmp_path / "unknown", per_class=1, classes=4)
    result = cli(model, str(unknown))
    assert result.returncode == 2
    assert "folder(s) class3 name no class of this model (class0, class1, class2)" in result.stderr
    loose = make_image_folder(tmp_path / "loose", per_class=1, classes=1)
    shutil.copy(loose / "class0" / "000.png", loose / "stray.png")
    assert "holds files directly (stray.png)" in cli(model, str(loose)).stderr
    assert "not a folder" in cli(model, str(loose / "stray.png")).stderr
    (loose / "stray.png").unlink()
    (loose / "gone").symlink_to(tmp_path / "nowhere")
    assert "holds files directly (gone, a broken link)" in cli(model, str(loose)).stderr
    empty = tmp_path / "empty"
    (empty / "class0").mkdir(parents=True)
    assert "no inputs in its class folders" in cli(model, str(empty)).stderr


def test_linked_folders_are_followed_and_an_unwritable_output_stops_before_any_work(
    deployed, tmp_path
):
    model = str(deployed / "export/model.onnx")
    folder = tmp_path / "linked"
    (folder / "class1").mkdir(parents=True)
    (folder / "class1" / "more").symlink_to(deployed / "raw" / "class1", target_is_directory=True)
    (folder / "class1" / "again").symlink_to(deployed / "raw" / "class1", target_is_directory=True)
    result = cli(model, str(folder), "--resamples", "0", "--splits", str(tmp_path / "none"))
    assert result.returncode == 0, result.stderr
    assert "12 images in 1 class folder" in result.stdout  # the linked folder once
    assert "warning" not in result.stderr
    (tmp_path / "file").write_text("")
    result = cli(model, str(folder), "--output", str(tmp_path / "file" / "m.json"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: --output {tmp_path / 'file' / 'm.json'}: cannot write")


def test_only_image_models_read_class_folders(deployed, monkeypatch, capsys):
    from torchstages import cli as cli_module
    from torchstages.deploy import runtime

    real = runtime.load_runner(deployed / "export/model.onnx")
    monkeypatch.setattr(real, "metadata", {**real.metadata, "kind": "table"})
    monkeypatch.setattr(runtime, "load_runner", lambda *a, **k: real)
    assert cli_module.main(["evaluate", str(deployed / "raw")]) == 2
    assert "this is a table model" in capsys.readouterr().err


def test_a_missing_class_is_fine_and_labels_follow_the_folder_names(deployed, runner, tmp_path):
    folder = tmp_path / "two"
    for name in ("class2", "class0"):
        shutil.copytree(deployed / "raw" / name, folder / name)
    reader = reader_for(runner.metadata)
    sources, labels = labelled_files(folder, runner.classes, reader, [])
    assert labels.tolist() == [0] * 12 + [2] * 12
    assert all(
        Path(s).parent.name == runner.classes[y] for s, y in zip(sources, labels, strict=True)
    )
    with pytest.raises(UserError, match="not a folder"):
        labelled_files(folder / "nothing", runner.classes, reader, [])
