"""Tables: reading, the split rules, train-only statistics, encoding, models, export parity."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
import torch

from tables_data import make_table, write_table
from torchstages.demo import write_demo_digits, write_demo_table
from torchstages.errors import UserError
from torchstages.io import write_csv
from torchstages.kinds import detect_kind
from torchstages.params.build_dataset import BuildDatasetParams, TableBuildParams
from torchstages.params.split import SplitParams
from torchstages.tables.build import build_table
from torchstages.tables.read import find_table, read_table, row_hashes
from torchstages.tables.schema import OTHER
from torchstages.tables.split import HEADER, read_table_split, split_table

if TYPE_CHECKING:
    from torchstages.training.loop import TrainOutputs


def split_and_build(raw: Path, root: Path, **split) -> Path:
    split_table(raw, root / "splits", SplitParams.model_validate(split))
    build_table(BuildDatasetParams(), raw, root / "splits", root / "processed")
    return root / "processed"


def test_kind_is_detected_and_mixing_is_an_error(tmp_path):
    write_table(make_table(), tmp_path)
    assert detect_kind(tmp_path) == "table"
    assert [detect_kind(tmp_path, kind) for kind in ("text", "series")] == ["text", "series"]
    with pytest.raises(UserError, match="split.kind is images"):
        detect_kind(tmp_path, "images")
    folders = tmp_path / "folders"
    (folders / "cats").mkdir(parents=True)
    with pytest.raises(UserError, match=r"split.kind is series .*\(expected one table file\)"):
        detect_kind(folders, "series")
    with pytest.raises(UserError, match=r"split.kind is text .*a label column; folders of text"):
        detect_kind(folders, "text")
    (tmp_path / "cats").mkdir()
    with pytest.raises(UserError, match="both a table"):
        detect_kind(tmp_path)


def test_a_txt_beside_the_data_is_a_readme_not_a_table(tmp_path):
    """Downloaded datasets ship a readme.txt or LICENSE.txt: beside class folders or a table it is
    skipped; alone it is the data (a text per line with a label, tab-separated)."""
    (tmp_path / "readme.txt").write_text("digits, scanned in 1998\n")
    (tmp_path / "cats").mkdir()
    assert detect_kind(tmp_path) == "images"
    (tmp_path / "cats").rmdir()
    write_table(make_table(), tmp_path)
    assert detect_kind(tmp_path) == "table" and find_table(tmp_path).suffix == ".csv"
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "messages.txt").write_text("label\ttext\nham\tsee you\n")
    assert detect_kind(alone, "text") == "text" and find_table(alone).name == "messages.txt"


def test_loose_files_and_workbooks_say_what_data_raw_needs(tmp_path):
    (tmp_path / "sales.xlsx").write_bytes(b"PK")
    with pytest.raises(UserError, match=r"sales.xlsx: a spreadsheet workbook is not read; save"):
        detect_kind(tmp_path)
    (tmp_path / "sales.xlsx").unlink()
    for n in range(4):
        (tmp_path / f"{n}.png").write_bytes(b"")
    with pytest.raises(UserError, match=r"\(0.png, 1.png, 2.png, ...\) but no class folders"):
        detect_kind(tmp_path)
    write_table(make_table(), tmp_path)  # one table file beside them: a table
    assert detect_kind(tmp_path) == "table"


def test_demo_table_is_written_alone_or_not_at_all(tmp_path):
    raw = tmp_path / "raw"
    path = write_demo_table("wine", raw)
    frame = read_table(path)
    assert len(frame) == 178 and set(frame["target"]) == {"class_0", "class_1", "class_2"}
    assert write_demo_table("wine", raw) == path and detect_kind(raw) == "table"  # again: same
    with pytest.raises(UserError, match=r"raw: holds a table \(wine.csv\); the digits need"):
        write_demo_digits(raw)
    (tmp_path / "digits" / "3").mkdir(parents=True)
    with pytest.raises(UserError, match=r"digits: already holds 3; the table must be alone"):
        write_demo_table("iris", tmp_path / "digits")
    assert not (tmp_path / "digits" / "iris.csv").exists()


def test_csv_delimiters_bom_and_parquet_read_alike(tmp_path):
    frame = make_table(40)
    comma = read_table(write_table(frame, tmp_path / "a"))
    semi = tmp_path / "b" / "t.csv"
    semi.parent.mkdir()
    semi.write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False, sep=";").encode())
    parquet = read_table(write_table(frame, tmp_path / "c", "t.parquet"))
    assert list(read_table(semi).columns) == list(comma.columns)
    pd.testing.assert_frame_equal(read_table(semi), comma)
    for column in ("colour", "flag", "day"):
        assert parquet[column].fillna("-").tolist() == comma[column].fillna("-").tolist()


def test_a_space_after_every_delimiter_is_not_part_of_the_cells(tmp_path):
    """ "age, workclass, income" as UCI's adult.data is written: the names and cells are read
    without the space, and a quoted cell after it keeps its comma."""
    spaced = tmp_path / "spaced.csv"
    spaced.write_text('id, name, target\n1, "Smith, John", <=50K\n2, Ann ,  >50K\n')
    frame = read_table(spaced)
    assert list(frame.columns) == ["id", "name", "target"]
    # only the space right after a delimiter goes: a cell's own spaces stay, as pandas keeps them
    assert frame.to_dict("list") == {
        "id": ["1", "2"],
        "name": ["Smith, John", "Ann "],
        "target": ["<=50K", ">50K"],
    }
    # a header without that space says the cells' spaces are their own
    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n x, y\n")
    assert read_table(plain).to_dict("list") == {"a": [" x"], "b": [" y"]}
    # the header's own commas inside quotes do not count; nor does a blank first line
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('\n"id", "a,b", "target"\n1, "x, y", yes\n')
    assert read_table(quoted).to_dict("list") == {"id": ["1"], "a,b": ["x, y"], "target": ["yes"]}


def test_decimal_commas_read_as_numbers_in_a_file_not_separated_by_commas(tmp_path):
    frame = make_table(200, "regression")
    frame["note"] = [f"item {i}, boxed" for i in range(200)]  # commas in text stay text
    semi = tmp_path / "raw" / "t.csv"
    semi.parent.mkdir()
    semi.write_text(frame.to_csv(index=False, sep=";", decimal=","), encoding="utf-8")
    written = pd.read_csv(semi, sep=";", dtype=str)
    assert written["x1"].str.contains(",").all()  # as a spreadsheet saves it
    comma = read_table(write_table(frame, tmp_path / "c"))
    pd.testing.assert_frame_equal(read_table(semi), comma)  # the same cells, points and all
    processed = split_and_build(semi.parent, tmp_path, table={"drop": ["id", "note"]})
    meta = json.loads((processed / "meta.json").read_text())
    assert meta["task"] == "regression"  # the target 12,5 is a number, not a class
    assert {c["name"] for c in meta["schema"]["numeric"]} >= {"x1", "x2"}
    # a comma between fields cannot be a decimal comma: "1,5" quoted there stays text
    quoted = tmp_path / "q" / "t.csv"
    quoted.parent.mkdir()
    quoted.write_text('a,target\n"1,5",x\n"2,5",y\n', encoding="utf-8")
    assert read_table(quoted)["a"].tolist() == ["1,5", "2,5"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a,b,target\n", "no rows"),
        ("a,a,target\n1,2,x\n", "duplicate column"),
        (b"a,target\n1,x\n\xff\xfe,y\n", "line 3 is not valid UTF-8"),
        ('a,target\n"1\n2",x\n3,y,z\n', "line 4: 3 fields where the header has 2 .*quotes"),
        ('a,target\n"1\n2",x\n"3,y\n', "line 4: a quote opened here is never closed$"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UserError, match=message):
        read_table(path)


def test_rows_are_indexed_by_the_line_they_start_on(tmp_path):
    """What every message, split file and prediction names a row by: blank lines (skipped) and
    a quoted cell's line breaks count, as in an editor."""
    path = tmp_path / "t.csv"
    path.write_text('a,target\n1,x\n\n2,"y\nz"\n  \n3,x\n')
    frame = read_table(path)
    assert list(frame.index) == [2, 4, 7] and frame["target"].tolist() == ["x", "y\nz", "x"]
    path.write_text("\n\na,target\n1,x\n2,y\n")  # blank lines before the header too
    assert list(read_table(path).index) == [4, 5]
    write_table(make_table(20), tmp_path / "pq", "t.parquet")
    assert list(read_table(tmp_path / "pq" / "t.parquet").index) == list(range(2, 22))


def test_split_is_stratified_seeded_and_keeps_duplicates_and_groups_together(tmp_path, caplog):
    frame = make_table(200)
    frame = pd.concat([frame, frame.iloc[:10]], ignore_index=True)  # 10 exact duplicate rows
    frame["patient"] = [f"p{i % 40}" for i in range(len(frame))]
    write_table(frame, tmp_path / "raw")
    params = {"table": {"group": "patient", "drop": ["id"]}}
    with caplog.at_level("INFO", logger="torchstages"):
        summary = split_table(tmp_path / "raw", tmp_path / "s", SplitParams.model_validate(params))
    assert summary["duplicates"] == {"groups": 10, "extra_rows": 10}
    assert summary["groups_kept_together"] == 40
    said = "10 groups of identical rows, 40 values of 'patient' with several rows kept within"
    assert "0 rows without a target dropped; " + said in caplog.text
    assert summary["task"] == "classification"
    where = {}
    for name in ("train", "val", "test"):
        for row, _, _, _ in read_table_split(tmp_path / "s" / f"{name}.csv"):
            where.setdefault(frame.loc[row, "patient"], set()).add(name)
    assert all(len(s) == 1 for s in where.values())  # no patient straddles two splits
    again = split_table(tmp_path / "raw", tmp_path / "s2", SplitParams.model_validate(params))
    assert again == summary
    assert (tmp_path / "s" / "test.csv").read_bytes() == (tmp_path / "s2" / "test.csv").read_bytes()


def test_regression_is_stratified_on_target_bins(tmp_path):
    write_table(make_table(300, "regression"), tmp_path / "raw")
    summary = split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
    assert summary["task"] == "regression"
    frame = read_table(tmp_path / "raw" / "table.csv")
    means = {
        name: frame["target"]
        .iloc[[r for r, _, _, _ in read_table_split(tmp_path / "s" / f"{name}.csv")]]
        .astype(float)
        .median()
        for name in ("train", "val", "test")
    }
    assert max(means.values()) - min(means.values()) < 1.5  # target spread is about 6
    # each decile of the target is shared out in the split fractions (unstratified: off by 4-5)
    target = frame["target"].astype(float).to_numpy()
    decile = np.searchsorted(np.quantile(target, np.linspace(0, 1, 11)[1:-1]), target)
    for name, fraction in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        rows = [r for r, _, _, _ in read_table_split(tmp_path / "s" / f"{name}.csv")]
        counts = np.bincount(decile[rows], minlength=10)
        assert np.abs(counts - fraction * np.bincount(decile, minlength=10)).max() <= 2, name


def test_missing_target_rows_are_dropped_and_counted(tmp_path):
    frame = make_table(100)
    frame.loc[[3, 7], "target"] = np.nan
    write_table(frame, tmp_path / "raw")
    summary = split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
    assert summary["rows_without_target_dropped"] == 2
    assert sum(summary["totals"].values()) == 98


@pytest.mark.parametrize(
    ("change", "params", "message"),
    [
        (lambda f: f.drop(columns="target"), {}, "no column named target"),
        (lambda f: f, {"table": {"target": "nope"}}, "split.table.target: no column 'nope'"),
        (lambda f: f.assign(target=np.nan), {}, "empty in every row"),
        (lambda f: f.assign(target=["a"] * 99 + ["b"]), {}, "fewer than 3 rows"),
        (  # 100 one-row classes: the message shows ten
            lambda f: f.assign(target=[f"c{v:03d}" for v in range(100)]),
            {},
            r"fewer than 3 rows \(one per split\): \{'c000': 1, .* 'c009': 1, \.\.\.\} \(100 classes\)$",
        ),
        (  # the three rows of class b are one patient's: they stay within one split
            lambda f: f.assign(
                target=["a"] * 97 + ["b"] * 3, who=[f"p{i}" for i in range(97)] + ["p97"] * 3
            ),
            {"table": {"group": "who"}},
            r"class 'b' has no row in the val or test split: its 3 rows include identical rows or "
            r"near duplicates or rows of one 'who' value, which stay within one split",
        ),
        (  # integer classes too small: no hint of numbers written with units
            lambda f: f.assign(target=["1"] * 60 + ["2"] * 38 + ["3"] * 2),
            {"table": {"task": "classification"}},
            r"\{'3': 2\}$",
        ),
        (  # two rows of 'high ' beside 'high': named as perhaps one class
            lambda f: f.assign(target=["high"] * 60 + ["low"] * 38 + ["high "] * 2),
            {},
            r"\{'high ': 2\} \('high' and 'high ': the same class, written two ways\?\)$",
        ),
        (  # prices with a currency sign are no classes: said so
            lambda f: f.assign(target=[f"${1000 + 7 * v:,}" for v in range(100)]),
            {},
            r"\(100 classes\) \(numbers written with a unit, a currency sign",
        ),
        (  # a number column with a stray word is not 99 classes
            lambda f: f.assign(target=[f"{v}.5" for v in range(99)] + ["unknown"]),
            {},
            r"target 'target' holds measurements but line 101 holds 'unknown': empty such cells",
        ),
        (
            lambda f: f.assign(target=[str(v) for v in range(99)] + ["inf"]),
            {"table": {"task": "regression"}},
            r"regression target 'target', line 101: 'inf' is not a finite number",
        ),
        (
            lambda f: f.assign(target=[str(v) for v in range(99)] + ["-2e39"]),
            {"table": {"task": "regression"}},
            r"line 101: '-2e39' is not a number a model holds \(float32: at most ±3.4e38\)",
        ),
    ],
)
def test_split_refuses_bad_targets(tmp_path, change, params, message):
    write_table(change(make_table(100)), tmp_path / "raw")
    with pytest.raises(UserError, match=message):
        split_table(tmp_path / "raw", tmp_path / "s", SplitParams.model_validate(params))


def test_rows_without_a_column_the_model_was_trained_on_are_refused_by_name(tmp_path):
    from torchstages.tables.schema import encode

    write_table(make_table(120), tmp_path / "raw")
    split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
    build_table(BuildDatasetParams(), tmp_path / "raw", tmp_path / "s", tmp_path / "p")
    schema = json.loads((tmp_path / "p" / "meta.json").read_text())["schema"]
    frame = read_table(tmp_path / "raw" / "table.csv")
    encode(frame, schema, TableBuildParams(), "rows.csv")  # all there: fine
    with pytest.raises(UserError, match=r"rows.csv: missing column\(s\) \['x1'\] that the model"):
        encode(frame.drop(columns="x1"), schema, TableBuildParams(), "rows.csv")


def test_statistics_come_from_train_rows_only(tmp_path):
    frame = make_table(200, "regression")
    write_table(frame, tmp_path / "raw")
    summary = split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
    build_table(BuildDatasetParams(), tmp_path / "raw", tmp_path / "s", tmp_path / "p1")
    # the same split, with every val and test row changed: other numbers, an unseen category,
    # another target scale, more missing cells
    held_out = [
        r for n in ("val", "test") for r, _, _, _ in read_table_split(tmp_path / "s" / f"{n}.csv")
    ]
    changed = frame.copy()
    changed.loc[held_out, "x1"] = 1000.0
    changed.loc[held_out, "colour"] = "purple"
    changed.loc[held_out, "x2"] = np.nan
    changed.loc[held_out, "target"] = 1e6
    write_table(changed, tmp_path / "raw2")
    columns = [*summary["features"], summary["target"]]
    hashes = dict(
        zip(
            range(len(changed)),
            row_hashes(read_table(tmp_path / "raw2" / "table.csv"), columns),
            strict=True,
        )
    )
    (tmp_path / "s2").mkdir()
    (tmp_path / "s2" / "summary.json").write_text((tmp_path / "s" / "summary.json").read_text())
    for name in ("train", "val", "test"):
        rows = read_table_split(tmp_path / "s" / f"{name}.csv")
        write_csv(
            tmp_path / "s2" / f"{name}.csv", HEADER, [[r, g, hashes[r], n] for r, g, _, n in rows]
        )
    build_table(BuildDatasetParams(), tmp_path / "raw2", tmp_path / "s2", tmp_path / "p2")
    meta1, meta2 = (json.loads((tmp_path / p / "meta.json").read_text()) for p in ("p1", "p2"))
    assert meta1 == meta2  # types, medians, means, stds, vocabularies, target mean/std
    for name in ("numeric", "labels"):
        train = [np.load(tmp_path / p / f"train_{name}.npy") for p in ("p1", "p2")]
        assert np.array_equal(*train, equal_nan=True)
        assert not np.array_equal(
            *(np.load(tmp_path / p / f"test_{name}.npy") for p in ("p1", "p2")), equal_nan=True
        )
    test_cat = np.load(tmp_path / "p2" / "test_categorical.npy")
    assert set(test_cat[:, 0].tolist()) == {OTHER}  # purple was never seen in train


def test_whole_number_codes_with_a_few_words_are_classes(tmp_path):
    """ICD-9 style codes (250, 401, V45): classes, not measurements with a stray word."""
    frame = make_table(300).assign(target=[str(100 + i % 30) for i in range(290)] + ["V45"] * 10)
    write_table(frame, tmp_path / "raw")
    summary = split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
    assert summary["task"] == "classification" and len(summary["classes"]) == 31


def test_build_refuses_a_table_changed_under_the_split(tmp_path):
    frame = make_table(100)
    write_table(frame, tmp_path / "raw")
    split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
    frame.loc[5, "x1"] = 99.0
    write_table(frame, tmp_path / "raw")
    with pytest.raises(UserError, match="line 7 changed since the split stage"):
        build_table(BuildDatasetParams(), tmp_path / "raw", tmp_path / "s", tmp_path / "p")


@pytest.mark.parametrize("rows", [99, 101])
def test_build_refuses_a_table_that_gained_or_lost_rows_since_the_split(tmp_path, rows):
    """A row appended after the split is in no split file: build-dataset alone (dvc repro -s)
    would leave it out of every array without a word. So would an older split summary."""
    frame = make_table(100)
    write_table(frame, tmp_path / "raw")
    split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
    write_table(pd.concat([frame, frame.tail(1)]).head(rows), tmp_path / "raw")
    with pytest.raises(UserError, match=f"has {rows} rows, the split stage read 100 "):
        build_table(BuildDatasetParams(), tmp_path / "raw", tmp_path / "s", tmp_path / "p")
    assert not (tmp_path / "p").exists()
    write_table(frame, tmp_path / "raw")
    summary = json.loads((tmp_path / "s/summary.json").read_text())
    del summary["rows_read"]
    (tmp_path / "s/summary.json").write_text(json.dumps(summary))
    with pytest.raises(UserError, match="the split stage read an unrecorded number of rows"):
        build_table(BuildDatasetParams(), tmp_path / "raw", tmp_path / "s", tmp_path / "p")


def test_column_types_missing_values_and_encoding(tmp_path):
    write_table(make_table(150), tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id"]})
    meta = json.loads((processed / "meta.json").read_text())
    numeric = {c["name"]: c for c in meta["schema"]["numeric"]}
    assert set(numeric) == {
        "x1",
        "x2",
        "flag",
        "day.year",
        "day.month",
        "day.day",
        "day.day_of_week",
    }
    assert numeric["flag"]["type"] == "boolean" and numeric["day.month"]["type"] == "datetime"
    assert numeric["x2"]["indicator"] and not numeric["x1"]["indicator"]
    (colour,) = meta["schema"]["categorical"]
    assert colour["name"] == "colour" and colour["categories"] == ["blue", "green", "red"]
    train = np.load(processed / "train_numeric.npy")
    assert train.dtype == np.float32 and np.isnan(train).any()  # raw: the model imputes
    assert np.load(processed / "train_categorical.npy").dtype == np.int64
    assert meta["classes"] == ["high", "low"]


def test_ids_and_free_text_left_in_the_features_are_named_in_a_warning(tmp_path, caplog):
    frame = make_table(150)
    frame["customer"] = np.arange(1000, 1150)  # an integer id kept as a number
    frame["note"] = [f"called on day {i}" for i in range(150)]  # free text, one value per row
    frame["visits"] = np.arange(150) % 7  # integers that repeat: a count, not an id
    write_table(frame, tmp_path / "raw")
    with caplog.at_level(logging.WARNING, logger="torchstages.tables.schema"):
        split_and_build(tmp_path / "raw", tmp_path)
    warned = {m.split("'")[1] for m in caplog.messages if "split.table.drop" in m}
    assert not [m for m in caplog.messages if "ISO 8601" in m]  # 'day' is ISO: expanded
    # 'id' holds strings r0000...: free text to the detector, as the note is
    assert warned == {"customer", "note", "id"}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="torchstages.tables.schema"):
        split_and_build(
            tmp_path / "raw", tmp_path / "b", table={"drop": ["customer", "note", "id"]}
        )
    assert not [m for m in caplog.messages if "split.table.drop" in m]


def test_classes_written_several_ways_are_named(tmp_path, caplog):
    frame = make_table(300)
    ways = {"high": ["Yes", "yes ", "YES"], "low": ["No", "no."]}
    frame["target"] = [ways[t][i % len(ways[t])] for i, t in enumerate(frame["target"])]
    write_table(frame, tmp_path / "raw")
    with caplog.at_level(logging.WARNING, logger="torchstages"):
        summary = split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
    assert summary["similar_classes"] == [["No", "no."], ["YES", "Yes", "yes "]]
    said = "classes ['No', 'no.'] and ['YES', 'Yes', 'yes '] differ only by letter case, spaces"
    assert any(said in m for m in caplog.messages)


def test_a_target_of_ids_extreme_targets_and_dates_in_several_formats_are_named(tmp_path, caplog):
    frame = make_table(200, "regression")
    day = pd.to_datetime(frame["day"])
    frame["day"] = [d.strftime("%d.%m.%Y" if i % 2 else "%Y-%m-%d") for i, d in enumerate(day)]
    frame.loc[[5, 50], "target"] = [1e9, 2e9]  # two typos among values around 10
    frame["customer"] = 1000 + np.arange(200)
    write_table(frame, tmp_path / "raw")
    with caplog.at_level(logging.WARNING, logger="torchstages"):
        split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id", "customer"]})
        ids = SplitParams.model_validate({"table": {"target": "customer", "drop": ["id"]}})
        split_table(tmp_path / "raw", tmp_path / "ids", ids)
    said = "\n".join(caplog.messages)
    assert "column 'day' holds dates in several formats (" in said
    assert "train targets ('target'; line " in said and "check them, or train with" in said
    assert "target 'customer' holds a different whole number in every row, nearly" in said
    assert "target 'target' holds a different" not in said


def test_what_the_table_messages_take_for_numbers_dates_and_one_class():
    """The patterns behind the warnings, on what they must take and must leave alone."""
    from torchstages.tables.read import DECORATED_NUMBER, similar_spellings
    from torchstages.tables.schema import _dates

    decorated = ["79.5 kg", "85%", "$51,255", "51.254,87", "1,200.50 EUR", "1 200"]
    codes = ["12", "1.5", "12A", "1st", "4WD", "24h", "M", "A1", "Q3 2024"]
    assert all(DECORATED_NUMBER.fullmatch(v) for v in decorated)
    assert not any(DECORATED_NUMBER.fullmatch(v) for v in codes)
    # every ISO form with an offset, mixed offsets and plain dates: the time as written
    cells = ["20240115T100000+0100", "2024-07-15T10+02", "2024-01-15T00:00:00Z", "2024-01-15"]
    assert [str(t) for t in _dates(pd.Series(cells))] == [
        "2024-01-15 10:00:00", "2024-07-15 10:00:00", "2024-01-15 00:00:00", "2024-01-15 00:00:00"
    ]  # fmt: skip
    assert similar_spellings(
        ["1", "1.0", "01", "123456789012345678901", "123456789012345678902"]
    ) == [["01", "1", "1.0"]]


def test_dates_in_a_local_order_are_named_not_guessed(tmp_path, caplog):
    frame = make_table(150)
    day = pd.to_datetime(frame["day"])
    frame["day"] = day.dt.strftime("%d.%m.%Y")  # 05.01.2024: January or May, by country
    write_table(frame, tmp_path / "raw")
    with caplog.at_level(logging.WARNING, logger="torchstages.tables.schema"):
        processed = split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id"]})
    (warning,) = [m for m in caplog.messages if "ISO 8601" in m]
    assert warning.startswith("build-dataset: column 'day' holds dates not written as ISO 8601")
    meta = json.loads((processed / "meta.json").read_text())
    assert "day" in {c["name"] for c in meta["schema"]["categorical"]}


def test_dates_with_offsets_that_change_at_summer_time_are_their_time_as_written(tmp_path):
    """A local export: +01:00 in winter, +02:00 in summer. The parts are the wall-clock time as
    written (a local midnight stays its own day, not the evening before in UTC)."""
    frame = make_table(150)
    day = pd.to_datetime(frame["day"])
    offsets = np.where(day.dt.month.between(4, 9), "+02:00", "+01:00")
    frame["day"] = day.dt.strftime("%Y-%m-%dT00:00:00") + offsets
    write_table(frame, tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id"]})
    meta = json.loads((processed / "meta.json").read_text())
    parts = [c["name"] for c in meta["schema"]["numeric"] if c["source"] == "day"]
    assert parts == ["day.year", "day.month", "day.day", "day.day_of_week"]  # no hour: midnight
    split = read_table_split(tmp_path / "splits/train.csv")
    lines = [line for *_, line in split]
    numeric = np.load(processed / "train_numeric.npy")
    at = [c["name"] for c in meta["schema"]["numeric"]].index("day.day")
    assert numeric[:, at].tolist() == day[[n - 2 for n in lines]].dt.day.tolist()


def test_columns_that_tell_the_model_little_are_named(tmp_path, caplog):
    """Numbers with units or separators (read as categories), one value everywhere, a column
    nearly always missing: kept, as dropping is the user's call, but each named."""
    frame = make_table(150)
    frame["weight"] = [f"{60 + i % 40}.5 kg" for i in range(150)]
    frame["price"] = [f"${1000 + 7 * i:,}" for i in range(150)]
    frame["country"] = "DE"
    frame["fax"] = [None] * 146 + ["555-1234"] * 4
    write_table(frame, tmp_path / "raw")
    with caplog.at_level(logging.WARNING, logger="torchstages.tables.schema"):
        split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id"]})
    said = [m for m in caplog.messages if "a unit, a currency sign" in m]
    assert [m.split("'")[1] for m in said] == ["weight", "price"]
    assert not [m for m in caplog.messages if "an id or free text" in m]  # said better above
    assert any(
        "column 'country' holds one value ('DE') in every train row" in m for m in caplog.messages
    )
    assert any("column 'fax' is missing in " in m for m in caplog.messages)
    assert not any("'x1'" in m for m in caplog.messages)  # the good columns are not named


def test_non_numeric_cell_in_a_numeric_column_is_named_or_treated_as_missing(tmp_path, caplog):
    frame = make_table(100)
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[10, "x1"] = "oops"
    write_table(frame, tmp_path / "raw")
    split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
    with pytest.raises(UserError, match="column 'x1', line 12: 'oops' is not a number"):
        build_table(BuildDatasetParams(), tmp_path / "raw", tmp_path / "s", tmp_path / "p")
    lenient = BuildDatasetParams(table=TableBuildParams(non_numeric="missing"))
    with caplog.at_level("INFO", logger="torchstages"):
        build_table(lenient, tmp_path / "raw", tmp_path / "s", tmp_path / "p")
    said = [m for m in caplog.messages if "read as missing" in m]  # once: its row's split
    assert len(said) == 1 and "column 'x1': 1 cell not a number" in said[0]
    assert "the first: 'oops' on line 12" in said[0]

    def refused_unless_lenient(message: str) -> None:
        write_table(frame, tmp_path / "raw")
        split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
        with pytest.raises(UserError, match=message):
            build_table(BuildDatasetParams(), tmp_path / "raw", tmp_path / "s", tmp_path / "p")
        build_table(lenient, tmp_path / "raw", tmp_path / "s", tmp_path / "p")

    # 'inf' and 1e400 parse as numbers, but no statistic or model input can hold them
    frame.loc[10, "x1"], frame.loc[20, "x1"] = 1.5, "1e400"
    refused_unless_lenient("column 'x1', line 22: '1e400' is not a finite number")
    stored = [np.load(tmp_path / "p" / f"{n}_numeric.npy") for n in ("train", "val", "test")]
    assert not any(np.isinf(a).any() for a in stored)  # the cell became missing
    # 1e39 is finite in float64 but inf in the float32 arrays a model reads; float32's largest
    # value, as numpy prints it, is not (it rounds to itself)
    from torchstages.tables.read import out_of_range

    edges = pd.Series([3.4028235e38, -3.4028235e38, 3.41e38, -1e39, np.nan, np.inf, 1.0])
    assert out_of_range(edges).tolist() == [False, False, True, True, False, True, False]
    frame.loc[20, "x1"] = "1e39"
    refused_unless_lenient(r"'1e39' is not a number a model holds \(float32: at most ±3.4e38\)")
    stored = [np.load(tmp_path / "p" / f"{n}_numeric.npy") for n in ("train", "val", "test")]
    assert not any(np.isinf(a).any() for a in stored)
    # a date column's cell that is no date follows the same rule
    frame.loc[20, "x1"], frame.loc[30, "day"] = 2.5, "2024-02-30"
    refused_unless_lenient("column 'day', line 32: '2024-02-30' is not a date")


def test_a_table_param_that_changes_nothing_leaves_the_built_files_as_they_were(tmp_path):
    write_table(make_table(100).drop(columns="day"), tmp_path / "raw")
    split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
    built = {}
    for datetime in ("expand", "drop"):  # no date column: nothing to expand or drop
        params = BuildDatasetParams(table=TableBuildParams(datetime=datetime))
        build_table(params, tmp_path / "raw", tmp_path / "s", tmp_path / datetime)
        built[datetime] = {p.name: p.read_bytes() for p in (tmp_path / datetime).iterdir()}
    assert built["expand"] == built["drop"]


def test_missing_error_mode_names_the_cell(tmp_path):
    write_table(make_table(100), tmp_path / "raw")
    split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
    strict = BuildDatasetParams(table=TableBuildParams(missing="error"))
    with pytest.raises(UserError, match=r"column '(x2|colour)', line \d+: missing value"):
        build_table(strict, tmp_path / "raw", tmp_path / "s", tmp_path / "p")


@pytest.mark.parametrize("model", [{"name": "mlp"}, {"name": "ft_transformer", "d_token": 16}])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_models_train_beat_the_baseline_and_export_with_parity(tmp_path, one_thread, model, task):
    from torchstages.data.store import load_table_split
    from torchstages.deploy.export import export_and_verify
    from torchstages.models.saved import load_model
    from torchstages.params.export import ExportParams
    from torchstages.tables.evaluate import table_outputs
    from torchstages.tables.training import TABLE_ENSEMBLE

    processed, outputs, card = _train_table(tmp_path, task, epochs=15, model=model)
    assert card["kind"] == "table" and card["task"] == task
    if model["name"] == "mlp":  # the default ensemble is what is saved, exported and checked
        assert card["architecture"]["ensemble"] == TABLE_ENSEMBLE > 1
    metrics = export_and_verify(
        ExportParams(),
        outputs.weights,
        outputs.card,
        processed,
        tmp_path / "export",
        tmp_path / "e.json",
    )
    assert [metrics["formats"][f]["prediction_agreement"] for f in ("onnx", "pt2")] == [1.0, 1.0]
    # a table's best epoch is picked by val loss, for classes too (monitor: auto)
    assert card["best"]["monitor"] == "val_loss"
    if task == "classification":
        net, _ = load_model(outputs.weights, outputs.card)
        numeric, categorical, y = load_table_split(processed, "val")
        logits = table_outputs(net, numeric, categorical, 512, torch.device("cpu"))
        accuracy = (logits.argmax(1).numpy() == np.asarray(y)).mean()
        assert accuracy > 0.75  # the target is a threshold of a learnable signal
    else:
        assert card["best"]["value"] < 0.5  # predicting the mean scores about 1.0
        from torchstages.params.evaluate import EvaluateParams
        from torchstages.tables.evaluate import evaluate_table

        net, _ = load_model(outputs.weights, outputs.card)
        metrics, _, _ = evaluate_table(
            "val", net, card, processed, tmp_path / "splits", tmp_path / "plots",
            EvaluateParams(bootstrap_resamples=0), torch.device("cpu"),
        )  # fmt: skip
        # reported in the target's units: below the train mean's error by as much as train saw
        ratio = (metrics["rmse"] / metrics["baseline_rmse"]) ** 2
        assert ratio < 0.5 and metrics["loss"] < 0.5


def _train_table(
    tmp_path: Path,
    task: str,
    classes: int = 2,
    epochs: int = 3,
    model: dict | None = None,
    **settings: Any,
) -> tuple[Path, TrainOutputs, dict]:
    """A generated table split, built and trained at default params but ``epochs`` and
    ``model`` (the table default, mlp, when None)."""
    from torchstages.params.train import TrainParams
    from torchstages.training.loop import TrainOutputs, train

    frame = make_table(240, task)
    if classes == 3:
        frame["target"] = pd.qcut(frame["x1"] + (frame["colour"] == "red"), 3, ["a", "b", "c"])
    write_table(frame, tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id"]})
    outputs = TrainOutputs(
        *(tmp_path / "m" / n for n in ("w.safetensors", "c.json", "k.pt")), tmp_path / "live"
    )
    params = {"epochs": epochs, "threads": 1, "model": model or {"name": "mlp"}, **settings}
    card = train(TrainParams.model_validate(params), processed, outputs)
    return processed, outputs, card


@pytest.mark.parametrize(
    ("task", "classes"), [("classification", 2), ("classification", 3), ("regression", 0)]
)
def test_linear_member_is_scikit_learns_linear_model(tmp_path, one_thread, task, classes):
    """The default table mlp averages its network with LogisticRegression(C=1) / Ridge(alpha=1)
    fitted on the train rows: the member's predictions are scikit-learn's on the same columns,
    and the saved model's output is the weighted average of the two."""
    from sklearn.linear_model import LogisticRegression, Ridge

    from torchstages.data.store import load_meta, load_table_split
    from torchstages.models.saved import load_model
    from torchstages.tables.training import TABLE_LINEAR_WEIGHT

    processed, outputs, card = _train_table(tmp_path, task, classes)
    assert card["architecture"]["linear_weight"] == TABLE_LINEAR_WEIGHT > 0
    net, _ = load_model(outputs.weights, outputs.card)
    assert net.linear.active  # fitted, and marked so in the saved weights

    def columns(split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
        numeric, categorical, y = (
            torch.as_tensor(np.array(a)) for a in load_table_split(processed, split)
        )
        onehots = [
            torch.nn.functional.one_hot(categorical[:, j], n)
            for j, n in enumerate(net.linear.cardinalities)
        ]
        x = torch.cat([net.inputs(numeric), *onehots], dim=1).double()
        return numeric, categorical, x, y.numpy()

    _, _, x_train, y_train = columns("train")
    numeric, categorical, x_test, _ = columns("test")
    with torch.no_grad():
        ours = net.linear(net.inputs(numeric), categorical).double()
        blended = net(numeric, categorical).double()
        net.linear.active = False
        network = net(numeric, categorical).double()
    a = TABLE_LINEAR_WEIGHT
    if task == "regression":
        meta = load_meta(processed)
        target = (y_train - meta["target_mean"]) / meta["target_std"]
        reference = Ridge(alpha=1.0).fit(x_train.numpy(), target).predict(x_test.numpy())
        np.testing.assert_allclose(ours[:, 0].numpy(), reference, atol=1e-4)
        np.testing.assert_allclose(blended, (1 - a) * network + a * ours, atol=1e-5)
    else:
        model = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x_train.numpy(), y_train)
        reference = model.predict_proba(x_test.numpy())
        np.testing.assert_allclose(ours.softmax(1).numpy(), reference, atol=1e-4)
        expected = (1 - a) * network.softmax(1) + a * ours.softmax(1)
        np.testing.assert_allclose(blended.softmax(1), expected, atol=1e-5)
    assert not torch.allclose(blended, network)  # the member does move the predictions


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_linear_weight_one_is_the_linear_model_alone(tmp_path, one_thread, task):
    """The README's way out for a table where the linear model is best: linear_weight 1."""
    from torchstages.data.store import load_table_split
    from torchstages.models.saved import load_model

    _, outputs, card = _train_table(
        tmp_path, task, epochs=1, model={"name": "mlp", "linear_weight": 1}
    )
    net, _ = load_model(outputs.weights, outputs.card)
    numeric, categorical, _ = (
        torch.as_tensor(np.array(a)) for a in load_table_split(tmp_path / "processed", "test")
    )
    with torch.no_grad():
        saved, member = net(numeric, categorical), net.linear(net.inputs(numeric), categorical)
    if task == "classification":
        saved, member = saved.softmax(1), member.softmax(1)
    torch.testing.assert_close(saved, member)
    assert card["architecture"]["linear_weight"] == 1


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_epochs_validation_scores_the_blend_that_is_shipped(tmp_path, one_thread, task):
    """The member is fitted on the train rows before the first epoch, so the best epoch is
    picked by the val loss of the saved model (network and member averaged), not of the network
    alone: the card's best value is the saved model's loss on the val rows."""
    import torch.nn.functional as F

    from torchstages.data.store import load_meta, load_table_split
    from torchstages.models.saved import load_model

    processed, outputs, card = _train_table(tmp_path, task, precision="fp32")
    net, _ = load_model(outputs.weights, outputs.card)
    numeric, categorical, y = (
        torch.as_tensor(np.array(a)) for a in load_table_split(processed, "val")
    )

    def val_loss() -> float:
        with torch.no_grad():
            out = net(numeric, categorical)
        if task == "classification":
            return F.cross_entropy(out, y).item()
        meta = load_meta(processed)
        target = (y.double() - meta["target_mean"]) / meta["target_std"]
        return F.mse_loss(out[:, 0].double(), target).item()

    assert card["best"]["monitor"] == "val_loss"
    assert card["best"]["value"] == pytest.approx(val_loss(), abs=1e-5)
    net.linear.active = False  # the network alone scores differently on the same rows
    assert card["best"]["value"] != pytest.approx(val_loss(), abs=1e-3)


def test_linear_member_changes_no_training_step(tmp_path, one_thread):
    """Training runs the network alone (the member only joins in evaluation): with and without
    the member every epoch's train loss is the same; only what validation measures differs."""
    _train_table(tmp_path / "a", "classification")
    _train_table(tmp_path / "b", "classification", model={"name": "mlp", "linear_weight": 0})
    curves = {
        name: [(tmp_path / d / "live/plots/metrics" / name).read_text() for d in ("a", "b")]
        for name in ("train/loss.tsv", "val/loss.tsv")
    }
    assert curves["train/loss.tsv"][0] == curves["train/loss.tsv"][1]
    assert curves["val/loss.tsv"][0] != curves["val/loss.tsv"][1]


def test_linear_member_is_for_tables_only():
    from torchstages.models.mlp import MLP, MLPSpec

    with pytest.raises(UserError, match="linear_weight: 0.5 is for tables"):
        MLP(MLPSpec(linear_weight=0.5), 1, (8, 8), 10)
    with pytest.raises(ValueError, match="linear_weight"):
        MLPSpec(linear_weight=1.5)


def test_regression_refuses_classification_settings(tmp_path):
    from torchstages.params.train import TrainParams
    from torchstages.training.loop import TrainOutputs, train

    write_table(make_table(100, "regression"), tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path)
    outputs = TrainOutputs(
        *(tmp_path / "m" / n for n in ("w.safetensors", "c.json", "k.pt")), tmp_path / "live"
    )
    for bad, message in (
        ({"loss": "cross_entropy"}, "train.loss: cross_entropy"),
        ({"monitor": "val_accuracy"}, "train.monitor"),
    ):
        with pytest.raises(UserError, match=message):
            train(TrainParams.model_validate({"epochs": 1, **bad}), processed, outputs)
    with pytest.raises(UserError, match="cnn does not take tables"):
        train(
            TrainParams.model_validate({"epochs": 1, "model": {"name": "cnn"}}), processed, outputs
        )


def test_table_input_imputes_scales_and_flags_missing():
    from torchstages.models.tabular import TableInput

    schema = {
        "numeric": [
            {"median": 2.0, "mean": 1.0, "std": 2.0, "indicator": True},
            {"median": 0.0, "mean": 0.0, "std": 1.0, "indicator": False},
        ]
    }
    out = TableInput(schema)(torch.tensor([[float("nan"), 3.0], [5.0, float("nan")]]))
    assert out.tolist() == [[0.5, 3.0, 1.0], [2.0, 0.0, 0.0]]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_table_model_trains_on_cuda(tmp_path):
    """On CUDA the loader compares devices with their index and the summary's dummy row goes
    to the model's device (both broke once; bench/gpu_tables.py is the fuller check)."""
    from torchstages.params.train import TrainParams
    from torchstages.training.loop import TrainOutputs, train

    write_table(make_table(200), tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id"]})
    outputs = TrainOutputs(
        *(tmp_path / "m" / n for n in ("w.safetensors", "c.json", "k.pt")), tmp_path / "live"
    )
    card = train(TrainParams.model_validate({"device": "cuda", "epochs": 2}), processed, outputs)
    assert card["best"]["monitor"] == "val_loss" and math.isfinite(card["best"]["value"])


def test_rows_equal_after_rounding_are_near_duplicates_kept_in_one_split(tmp_path):
    frame = make_table(200)
    frame["x1"] = frame["x1"].map(lambda v: float(f"{v:.3g}"))  # away from rounding boundaries
    copies = frame.iloc[:20].copy()
    copies["x1"] = copies["x1"] * (1 + 1e-9)  # a re-export with float noise: not byte-equal
    copies["colour"] = copies["colour"].str.upper()
    frame = pd.concat([frame, copies], ignore_index=True)
    write_table(frame, tmp_path / "raw")
    grouped = split_table(tmp_path / "raw", tmp_path / "g", SplitParams.model_validate({}))
    near = grouped["near_duplicates"]
    assert near["groups"] == 20 and near["rows"] == 40 and near["groups_across_splits"] == 0
    reported = split_table(
        tmp_path / "raw", tmp_path / "r", SplitParams.model_validate({"near_duplicates": "report"})
    )
    assert reported["near_duplicates"]["groups"] == 20
    assert reported["near_duplicates"]["groups_across_splits"] > 0  # only counted, not grouped
    off = split_table(
        tmp_path / "raw", tmp_path / "o", SplitParams.model_validate({"near_duplicates": "off"})
    )
    assert "near_duplicates" not in off


def test_kind_defaults_fill_only_what_the_user_left_unset():
    from torchstages.params.train import TrainParams
    from torchstages.training.data import params_for_kind

    table = {"kind": "table", "task": "regression"}
    filled = params_for_kind(TrainParams(), table)
    assert (filled.model.name, filled.loss, filled.monitor, filled.threads) == (
        "mlp",
        "mse",
        "val_loss",
        1,
    )
    chosen = TrainParams.model_validate({"threads": 2, "loss": "huber", "model": {"name": "cnn"}})
    kept = params_for_kind(chosen, table)
    assert (kept.model.name, kept.loss, kept.threads) == ("cnn", "huber", 2)
    # loss and monitor: auto resolve per kind and task; a setting the user wrote is kept
    images = {"classes": ["a", "b"]}
    resolved = {"loss": "cross_entropy", "monitor": "val_accuracy"}
    assert params_for_kind(TrainParams(), images) == TrainParams.model_validate(resolved)
    classes = {"kind": "table", "task": "classification"}
    assert (
        params_for_kind(TrainParams(), classes).loss,
        params_for_kind(TrainParams(), classes).monitor,
    ) == ("cross_entropy", "val_loss")
    by_accuracy = TrainParams.model_validate({"monitor": "val_accuracy"})
    assert params_for_kind(by_accuracy, classes).monitor == "val_accuracy"
    with pytest.raises(UserError, match="train.monitor: val_accuracy needs classes"):
        params_for_kind(by_accuracy, table)
    # settings for classes were silently ignored by a regression (and a forecast)
    for setting, said in (
        ({"label_smoothing": 0.1}, "train.label_smoothing: smooths class labels; a regression"),
        ({"class_weights": "balanced"}, "train.class_weights: weights classes; a regression"),
    ):
        with pytest.raises(UserError, match=said):
            params_for_kind(TrainParams.model_validate(setting), table)
        params_for_kind(TrainParams.model_validate(setting), classes)
    forecast = {"kind": "series", "task": "forecast"}
    with pytest.raises(UserError, match="smooths class labels; a forecast has none"):
        params_for_kind(TrainParams.model_validate({"label_smoothing": 0.1}), forecast)


def test_embedding_dims_must_name_a_categorical_column(tmp_path):
    """A typo, or a numeric column, trained at the default sizes without a word; elsewhere
    than a table the key is refused like the other table-only keys."""
    from torchstages.models import build_table_model, parse_spec
    from torchstages.models.mlp import MLP, MLPSpec

    schema = {
        "numeric": [
            {"name": "x1", "median": 0.0, "mean": 0.0, "std": 1.0, "indicator": False},
        ],
        "categorical": [{"name": "colour", "categories": ["red", "blue"]}],
    }
    build_table_model(parse_spec({"name": "mlp", "embedding_dims": {"colour": 3}}), schema, 2)
    for name in ("color", "x1"):
        with pytest.raises(UserError, match=rf"embedding_dims: '{name}' is not a categorical col"):
            build_table_model(parse_spec({"name": "mlp", "embedding_dims": {name: 3}}), schema, 2)
    with pytest.raises(UserError, match="embedding_dims: sizes of a table's category embeddings"):
        MLP(MLPSpec(embedding_dims={"colour": 3}), 1, (8, 8), 10)


def test_ensemble_members_differ_and_evaluation_averages_them():
    from torchstages.models.mlp import MLPSpec
    from torchstages.models.tabular import TableMLP

    schema = {
        "numeric": [{"median": 0.0, "mean": 0.0, "std": 1.0, "indicator": False}] * 3,
        "categorical": [{"name": "c", "categories": ["a", "b"]}],
    }
    numeric, categorical = torch.randn(5, 3), torch.tensor([[0], [1], [2], [3], [1]])
    torch.manual_seed(0)
    for outputs in (3, 1):
        net = TableMLP(MLPSpec(ensemble=4, dropout=0.0), schema, outputs)
        members = net.train()(numeric, categorical)  # (N, k, outputs): one per member
        assert members.shape == (5, 4, outputs)
        assert not torch.allclose(members[:, 0], members[:, 1])
        averaged = net.eval()(numeric, categorical)  # what validate, test and the export see
        if outputs == 1:
            expected = members.mean(1)
        else:  # its softmax is the members' mean probability
            expected = members.softmax(-1).mean(1).log()
            assert torch.allclose(averaged.softmax(-1), members.softmax(-1).mean(1), atol=1e-6)
        assert averaged.shape == (5, outputs) and torch.allclose(averaged, expected, atol=1e-6)
    single = TableMLP(MLPSpec(ensemble=1), schema, 3)
    assert single.eval()(numeric, categorical).shape == (5, 3)


def test_ensemble_is_for_tables_only():
    from torchstages.models import build_model, parse_spec

    with pytest.raises(UserError, match="ensemble: 4 is for tables"):
        build_model(parse_spec({"name": "mlp", "ensemble": 4}), 1, (8, 8), 10)


def test_table_batch_size_grows_with_the_train_rows_only_from_the_default():
    from torchstages.params.train import TrainParams
    from torchstages.tables.training import TABLE_ENSEMBLE, table_batch_size, table_epochs
    from torchstages.training.data import params_for_kind

    assert [table_batch_size(n) for n in (100, 16_383, 16_384, 35_000, 70_000, 10**7)] == [
        64, 64, 128, 256, 512, 1024
    ]  # fmt: skip
    assert table_batch_size(35_000, nproc=3) == 255  # each process an equal share
    big = {"kind": "table", "task": "classification", "counts": {"train": 35_000}}
    filled = params_for_kind(TrainParams(), big)
    assert filled.batch_size == 256 and filled.model.ensemble == TABLE_ENSEMBLE
    # the shipped params.yaml writes 64: the default as written still grows
    assert params_for_kind(TrainParams.model_validate({"batch_size": 64}), big).batch_size == 256
    chosen = {"batch_size": 32, "model": {"name": "mlp", "ensemble": 1}}
    kept = params_for_kind(TrainParams.model_validate(chosen), big)
    assert (kept.batch_size, kept.model.ensemble) == (32, 1)
    assert (filled.epochs, kept.epochs) == (5, 5)
    assert [table_epochs(n) for n in (400, 4096, 4200, 8192, 35_000)] == [30, 30, 30, 15, 5]
    literal = params_for_kind(TrainParams(scale_to_rows=False), big)
    assert (literal.batch_size, literal.epochs) == (64, 30)
    # a schedule for 30 epochs that 5 would never reach is named, not silently cut short
    for schedule in ({"name": "multistep", "milestones": [10, 20]}, {"warmup_epochs": 6}):
        late = TrainParams.model_validate({"schedule": schedule})
        with pytest.raises(UserError, match=r"train.schedule.\w+ .* would never come: 35000 "):
            params_for_kind(late, big)
    small = {**big, "counts": {"train": 400}}
    assert (params_for_kind(TrainParams(), small).batch_size, table_epochs(400)) == (64, 30)
    # images keep every default, whatever their row count (loss and monitor: auto resolved)
    images = {"classes": ["a", "b"], "counts": {"train": 60_000}}
    resolved = TrainParams.model_validate({"loss": "cross_entropy", "monitor": "val_accuracy"})
    assert params_for_kind(TrainParams(), images) == resolved


@pytest.mark.parametrize(
    ("task", "loss", "monitor"),
    [("regression", "mse", "val_loss"), ("classification", "cross_entropy", "val_loss")],
)
def test_shipped_params_need_only_the_model_for_a_table(task, loss, monitor):
    """README's "Your own table" overrides only train.model: the rest of the shipped params.yaml
    must resolve for either task (it once needed -S train.loss=mse -S train.monitor=val_loss)."""
    from conftest import ROOT
    from torchstages.params.base import load_section
    from torchstages.params.train import TrainParams
    from torchstages.training.data import params_for_kind

    shipped = load_section(TrainParams, "train", ROOT / "params.yaml")
    params = TrainParams.model_validate(
        {**shipped.model_dump(mode="json"), "model": {"name": "mlp"}}
    )
    filled = params_for_kind(params, {"kind": "table", "task": task, "counts": {"train": 400}})
    assert (filled.model.name, filled.loss, filled.monitor) == ("mlp", loss, monitor)


def test_a_few_far_out_train_targets_are_named_by_line(tmp_path, caplog):
    """Two typo-sized targets among 300 set the scale every target is divided by: named, with
    the lines to check; a table without them says nothing."""
    frame = make_table(300, task="regression")
    write_table(frame, tmp_path / "plain")
    with caplog.at_level("WARNING", logger="torchstages"):
        split_and_build(tmp_path / "plain", tmp_path / "p1", seed=1)
    assert "of its variance" not in caplog.text
    frame.loc[[10, 20, 30], "target"] = [9_000.0, -8_000.0, 7_000.0]
    write_table(frame, tmp_path / "typos")
    with caplog.at_level("WARNING", logger="torchstages"):
        processed = split_and_build(tmp_path / "typos", tmp_path / "p2", seed=1)
    split_of = {
        int(line.split(",")[0]): name
        for name in ("train", "val", "test")
        for line in (tmp_path / f"p2/splits/{name}.csv").read_text().splitlines()[1:]
    }
    in_train = [row + 2 for row in (10, 20, 30) if split_of[row] == "train"]  # lines: header 1
    assert in_train and (processed / "meta.json").exists()
    warned = next(r.getMessage() for r in caplog.records if "of its variance" in r.getMessage())
    assert f"line {', '.join(map(str, in_train))})" in warned and "train.loss: huber" in warned
