"""Images that come split already: data/raw/train/<class>/, test/<class>/ (maybe val/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchstages.data.build import build_dataset
from torchstages.data.discover import discover
from torchstages.data.given_splits import KeepGiven
from torchstages.data.near_duplicates import NearDuplicates
from torchstages.data.split import read_split, split_dataset
from torchstages.errors import UserError
from torchstages.params.build_dataset import BuildDatasetParams

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
CLASSES = ("cat", "dog")


def _given(raw: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """``counts[folder]`` noise pictures per class under ``raw/<folder>/<class>/``: every one
    far from every other, so that only the copies a test makes are near duplicates."""
    rng = np.random.default_rng(seed)
    for folder, n in counts.items():
        for label in CLASSES:
            (raw / folder / label).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (16, 16), dtype=np.uint8)
                Image.fromarray(pixels).save(raw / folder / label / f"{i}.png")
    return raw


def _split(raw: Path, out: Path, seed: int = 0, near=None, keep=True) -> dict[str, list[str]]:
    """The split stage's function, as it runs at ``given_splits: keep`` (or ``pool``)."""
    summary = split_dataset(raw, out, FRACTIONS, seed, near, KeepGiven() if keep else None)
    assert json.loads((out / "summary.json").read_text()) == summary
    return {name: [r.path for r in read_split(out / f"{name}.csv")] for name in FRACTIONS}


def _files(raw: Path, folder: str) -> set[str]:
    return {p.relative_to(raw).as_posix() for p in (raw / folder).rglob("*.png")}


def test_the_given_test_folder_is_the_test_split_and_val_comes_out_of_train(tmp_path):
    raw = _given(tmp_path / "raw", {"train": 12, "test": 5})
    paths = _split(raw, tmp_path / "splits")
    assert set(paths["test"]) == _files(raw, "test")
    assert set(paths["train"]) | set(paths["val"]) == _files(raw, "train")
    assert not set(paths["train"]) & set(paths["val"])
    # val is carved per class, in val's share of train + val (0.2 / 0.8 of 12 per class)
    rows = read_split(tmp_path / "splits/val.csv")
    assert sorted(r.label for r in rows) == ["cat"] * 3 + ["dog"] * 3
    assert all(r.label == r.path.split("/")[1] for r in rows)  # the class is one level down
    summary = json.loads((tmp_path / "splits/summary.json").read_text())
    assert summary["given_splits"] == {
        "mode": "keep",
        "folders": {"test": "test", "train": "train"},
        "carved_from_train": ["val"],
        "dropped": [],
    }
    assert summary["classes"] == list(CLASSES)
    # build-dataset reads the files where they are
    counts = build_dataset(
        BuildDatasetParams(image_size=8, color="grayscale", workers=1),
        raw,
        tmp_path / "splits",
        tmp_path / "processed",
    )
    assert counts == {"train": 18, "val": 6, "test": 10}


def test_a_given_val_folder_is_kept_too_and_a_missing_test_is_carved(tmp_path):
    raw = _given(tmp_path / "all", {"Training": 6, "validation": 3, "Test": 2})
    paths = _split(raw, tmp_path / "splits")
    for name, folder in (("train", "Training"), ("val", "validation"), ("test", "Test")):
        assert set(paths[name]) == _files(raw, folder)
    raw = _given(tmp_path / "no_test", {"train": 12, "val": 3})
    paths = _split(raw, tmp_path / "splits2")
    assert set(paths["val"]) == _files(raw, "val")
    assert set(paths["train"]) | set(paths["test"]) == _files(raw, "train")
    assert len(paths["test"]) == 6  # test's share of train + test: 0.2 / 0.8 of 12, per class
    summary = json.loads((tmp_path / "splits2/summary.json").read_text())
    assert summary["given_splits"]["carved_from_train"] == ["test"]


def test_the_carved_split_depends_on_the_seed_only(tmp_path):
    raw = _given(tmp_path / "raw", {"train": 20, "test": 3})
    first = _split(raw, tmp_path / "a", seed=1)
    assert _split(raw, tmp_path / "b", seed=1) == first
    assert _split(raw, tmp_path / "c", seed=2)["val"] != first["val"]
    assert _split(raw, tmp_path / "c", seed=2)["test"] == first["test"]


def test_a_copy_of_a_test_file_in_train_is_left_out_and_named(tmp_path):
    raw = _given(tmp_path / "raw", {"train": 8, "test": 3})
    copy = raw / "train/dog/copy.png"
    copy.write_bytes((raw / "test/cat/1.png").read_bytes())  # under another class, even
    paths = _split(raw, tmp_path / "splits")
    assert "train/dog/copy.png" not in paths["train"] + paths["val"]
    assert set(paths["test"]) == _files(raw, "test")
    summary = json.loads((tmp_path / "splits/summary.json").read_text())
    assert summary["given_splits"]["dropped"] == [
        {"path": "train/dog/copy.png", "copy_of": "test/cat/1.png", "how": "same bytes"}
    ]


@pytest.mark.parametrize(("mode", "left_out"), [("group", True), ("report", False)])
def test_a_near_copy_of_a_test_picture_is_left_out_when_grouped(tmp_path, mode, left_out):
    raw = _given(tmp_path / "raw", {"train": 8, "test": 3})
    with Image.open(raw / "test/cat/2.png") as img:  # resized: other bytes, the same picture
        img.resize((32, 32), Image.Resampling.BILINEAR).save(raw / "train/cat/bigger.png")
    paths = _split(raw, tmp_path / "splits", near=NearDuplicates(mode, 16))
    assert ("train/cat/bigger.png" not in paths["train"] + paths["val"]) == left_out
    summary = json.loads((tmp_path / "splits/summary.json").read_text())
    dropped = summary["given_splits"]["dropped"]
    assert bool(dropped) == left_out
    if left_out:
        assert dropped[0]["how"] == "near duplicate"
        assert summary["near_duplicates"]["groups"] == 0  # its only other member is gone
    else:
        assert summary["near_duplicates"]["groups_across_splits"] == 1


def test_pool_splits_the_given_folders_anew_by_class(tmp_path):
    raw = _given(tmp_path / "raw", {"train": 8, "test": 8})
    paths = _split(raw, tmp_path / "splits", keep=False)
    every = _files(raw, "train") | _files(raw, "test")
    assert sorted(paths["train"] + paths["val"] + paths["test"]) == sorted(every)
    assert {p.split("/")[0] for p in paths["test"]} == {"train", "test"}  # drawn from both
    assert [r.label for r in read_split(tmp_path / "splits/test.csv")].count("cat") == 3
    summary = json.loads((tmp_path / "splits/summary.json").read_text())
    assert summary["given_splits"] == {
        "mode": "pool",
        "folders": {"test": "test", "train": "train"},
    }


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"train": 3, "training": 3, "test": 2}, r"train/ and training/ both hold the train split"),
        ({"val": 3, "test": 2}, r"a dataset split already \(test/, val/\) needs a train/ folder"),
    ],
)
def test_given_folders_that_cannot_be_used_say_why(tmp_path, counts, message):
    with pytest.raises(UserError, match=message):
        discover(_given(tmp_path / "raw", counts))


def test_a_class_missing_from_a_given_folder_is_named(tmp_path):
    raw = _given(tmp_path / "raw", {"train": 4, "test": 2})
    (raw / "train/bird").mkdir()
    for i in range(3):
        Image.new("L", (4, 4), 60 * i).save(raw / "train/bird" / f"{i}.png")
    with pytest.raises(UserError, match=r"raw/test: no images of class\(es\) \['bird'\]"):
        discover(raw)


def test_train_and_test_holding_images_directly_are_two_classes(tmp_path):
    """Only folders named for splits that hold folders are a dataset split already."""
    rng = np.random.default_rng(0)
    for label in ("train", "test"):
        (tmp_path / "raw" / label).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "raw" / label / f"{i}.png")
    found = discover(tmp_path / "raw")
    assert not found.given and {r.label for r in found.rows} == {"train", "test"}
    for label in ("train", "test"):  # and images in folders below them too
        (tmp_path / "raw" / label / "more").mkdir()
        pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "raw" / label / "more/x.png")
    found = discover(tmp_path / "raw")
    assert not found.given and {r.label for r in found.rows} == {"train", "test"}


def test_the_report_says_what_was_made_of_the_given_folders(tmp_path):
    """And lists split.given_splits among the params only then (test_report: the demo's not)."""
    from conftest import tiny_train_params
    from torchstages.evaluation.evaluate import EvalPaths, evaluate_split
    from torchstages.params.evaluate import EvaluateParams
    from torchstages.training.loop import TrainOutputs, train

    raw = _given(tmp_path / "raw", {"train": 8, "test": 3})
    (raw / "train/dog/copy.png").write_bytes((raw / "test/cat/1.png").read_bytes())
    _split(raw, tmp_path / "splits")
    params = BuildDatasetParams(image_size=8, color="grayscale", workers=1)
    build_dataset(params, raw, tmp_path / "splits", tmp_path / "processed")
    outputs = TrainOutputs(*(tmp_path / "m" / n for n in ("w.safetensors", "c.json", "k.pt")),
                           tmp_path / "live")  # fmt: skip
    train(tiny_train_params(epochs=1), tmp_path / "processed", outputs)
    (tmp_path / "params.yaml").write_text("split: {given_splits: keep, seed: 0}\n")
    paths = EvalPaths(
        processed=tmp_path / "processed",
        splits=tmp_path / "splits",
        weights=outputs.weights,
        card=outputs.card,
        metrics=tmp_path / "metrics/test.json",
        plots_dir=tmp_path / "plots/test",
        report=tmp_path / "report.md",
        params=tmp_path / "params.yaml",
    )
    evaluate_split("test", EvaluateParams(bootstrap_resamples=0), paths)
    report = (tmp_path / "report.md").read_text()
    assert (
        "## Given splits\n\nThe data came split (`test/`, `train/`): each folder kept as its "
        "split; val carved from train. 1 file left out of the split it came in" in report
    )
    assert "the first: `train/dog/copy.png` (same bytes: `test/cat/1.png`)." in report
    assert "| `split.given_splits` | `keep` |" in report
