import shutil

import pytest

from torchstages.data.discover import Row, discover_images
from torchstages.data.split import (
    assign_splits,
    check_no_leakage,
    read_split,
    split_dataset,
    summarize,
)
from torchstages.errors import UserError

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def test_discovery_uses_content_skips_hidden_and_non_images(image_folder):
    (image_folder / "class0" / "notes.txt").write_text("not an image")
    (image_folder / "class0" / ".hidden.png").write_bytes(
        (image_folder / "class0/000.png").read_bytes()
    )
    (image_folder / ".cache" / "x").mkdir(parents=True)
    shutil.copy(image_folder / "class1/000.png", image_folder / ".cache/x/a.png")
    nested = image_folder / "class2" / "deeper" / "still"
    nested.mkdir(parents=True)
    shutil.copy(image_folder / "class2/000.png", nested / "no_extension")
    rows = discover_images(image_folder)
    paths = {r.path for r in rows}
    assert "class2/deeper/still/no_extension" in paths
    assert not any("notes" in p or "hidden" in p or ".cache" in p for p in paths)
    assert {r.label for r in rows} == {"class0", "class1", "class2"}
    assert len(rows) == 37 and rows == sorted(rows)


def test_too_few_images_or_classes_is_a_clear_error(tmp_path, image_folder):
    (image_folder / "tiny").mkdir()
    shutil.copy(image_folder / "class0/000.png", image_folder / "tiny/a.png")
    with pytest.raises(UserError, match=r"fewer than 3 images .*'tiny': 1"):
        discover_images(image_folder)
    with pytest.raises(UserError, match="folder not found"):
        discover_images(tmp_path / "missing")


def _rows(per_class: dict[str, int]) -> list[Row]:
    return [Row(f"{c}/{i}.png", c, f"{c}-{i:04d}") for c, n in per_class.items() for i in range(n)]


def test_split_is_stratified_in_the_given_fractions():
    splits = assign_splits(_rows({"a": 100, "b": 20, "c": 7}), FRACTIONS, seed=0)
    counts = summarize(splits)["counts"]
    assert counts["train"] == {"a": 60, "b": 12, "c": 4}
    # c's 7 make 4.2 / 1.4 / 1.4: the largest remainder gives val and test one each, and the
    # one left goes to the first of the tied splits
    assert counts["val"] == {"a": 20, "b": 4, "c": 2} and counts["test"] == {
        "a": 20,
        "b": 4,
        "c": 1,
    }
    assert sum(sum(c.values()) for c in counts.values()) == 127
    assert all(counts[s]["c"] >= 1 for s in counts)  # every class in every split


def test_split_depends_on_seed_not_on_listing_order():
    rows = _rows({"a": 50, "b": 50})
    first = assign_splits(rows, FRACTIONS, seed=5)
    assert assign_splits(list(reversed(rows)), FRACTIONS, seed=5) == first
    assert assign_splits(rows, FRACTIONS, seed=6) != first


def test_duplicates_stay_in_one_split_and_are_reported():
    rows = _rows({"a": 30, "b": 30})
    dup = [Row(f"a/copy{i}.png", "a", "a-0001") for i in range(4)]
    conflict = Row("b/looks_like_a.png", "b", "a-0002")
    splits = assign_splits(rows + dup + [conflict], FRACTIONS, seed=1)
    check_no_leakage(splits)
    holding = [s for s, rs in splits.items() if any(r.sha256 == "a-0001" for r in rs)]
    assert len(holding) == 1
    summary = summarize(splits)
    assert summary["duplicates"]["groups"] == 2
    assert summary["duplicates"]["extra_copies"] == 5
    assert summary["duplicates"]["label_conflicts"] == [["a/2.png", "b/looks_like_a.png"]]


def test_leakage_check_names_both_files():
    splits = {"train": [Row("a/1.png", "a", "x")], "val": [], "test": [Row("a/9.png", "a", "x")]}
    with pytest.raises(UserError, match=r"leakage: a/9.png \(test\) has the same bytes as a/1.png"):
        check_no_leakage(splits)


def test_split_stage_writes_csvs_that_read_back(tmp_path, image_folder):
    summary = split_dataset(image_folder, tmp_path / "splits", FRACTIONS, seed=3)
    back = {s: read_split(tmp_path / "splits" / f"{s}.csv") for s in ("train", "val", "test")}
    assert summary["totals"] == {s: len(r) for s, r in back.items()}
    assert sorted(r for rs in back.values() for r in rs) == discover_images(image_folder)
    first = (tmp_path / "splits/train.csv").read_bytes()
    split_dataset(image_folder, tmp_path / "splits", FRACTIONS, seed=3)
    assert (tmp_path / "splits/train.csv").read_bytes() == first
    assert first.startswith(b"path,label,sha256\nclass0/")


def test_malformed_split_csv_is_a_clear_error(tmp_path):
    bad = tmp_path / "train.csv"
    bad.write_text("file,label\nx,y\n")
    with pytest.raises(UserError, match="train.csv: expected header path,label,sha256"):
        read_split(bad)


def test_artifacts_get_normal_file_permissions(tmp_path):
    import os

    from torchstages.io import write_json

    write_json(tmp_path / "a.json", {"b": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask
