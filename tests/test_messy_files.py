"""Files as spreadsheets and databases export them: placeholders, blank cells, missing-value words,
empty trailing columns, a repeated header, legacy encodings. Each is read as meant, or named."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from series_data import make_panel, make_series, write_series
from tables_data import make_table, write_table
from text_data import make_texts, write_texts
from torchstages.errors import UserError
from torchstages.params.build_dataset import BuildDatasetParams, TableBuildParams
from torchstages.params.split import SplitParams
from torchstages.series.split import split_series
from torchstages.tables.build import build_table
from torchstages.tables.read import read_table
from torchstages.tables.split import split_table
from torchstages.text.split import split_texts

LENIENT = BuildDatasetParams(table=TableBuildParams(non_numeric="missing"))


def split_and_build(raw: Path, root: Path, build=None, **split) -> dict:
    split_table(raw, root / "s", SplitParams.model_validate(split))
    build_table(build or BuildDatasetParams(), raw, root / "s", root / "p")
    return json.loads((root / "p" / "meta.json").read_text())


def numeric_names(meta: dict) -> set[str]:
    return {c["name"] for c in meta["schema"]["numeric"]}


def test_placeholders_do_not_hide_decimal_commas(tmp_path):
    """'-' in every seventh cell of a decimal-comma column (as a spreadsheet writes "no value"):
    the column is still numbers, and the '-' is named, not the column read as 170 categories."""
    frame = make_table(300)
    cells = frame["x1"].map(lambda v: f"{v:.2f}".replace(".", ",")).astype(object)
    cells[::7] = "-"
    frame["x1"] = cells
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "t.csv").write_text(frame.to_csv(index=False, sep=";", decimal=","), encoding="utf-8")
    assert read_table(raw / "t.csv")["x1"].iloc[1] == frame["x1"].iloc[1].replace(",", ".")
    with pytest.raises(UserError, match=r"column 'x1', line \d+: '-' is not a number"):
        split_and_build(raw, tmp_path, table={"drop": ["id"]})
    meta = split_and_build(raw, tmp_path, LENIENT, table={"drop": ["id"]})
    assert "x1" in numeric_names(meta)
    x1 = next(c for c in meta["schema"]["numeric"] if c["name"] == "x1")
    assert x1["indicator"]  # the '-' cells are missing, and flagged as such


def test_a_numeric_column_with_many_placeholders_is_numeric_and_names_them(tmp_path, caplog):
    frame = make_table(300)
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[::5, "x1"] = "?"  # 20%: too many for the share of numbers alone
    write_table(frame, tmp_path / "raw")
    with pytest.raises(UserError, match=r"column 'x1', line \d+: '\?' is not a number"):
        split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id"]})
    with caplog.at_level(logging.INFO, logger="torchstages"):
        meta = split_and_build(tmp_path / "raw", tmp_path, LENIENT, table={"drop": ["id"]})
    assert "x1" in numeric_names(meta)
    assert not [m for m in caplog.messages if "an id or free text" in m]
    # codes that hold digits but are not numbers stay categories
    frame["x1"] = [f"A{i % 7}" for i in range(300)]
    write_table(frame, tmp_path / "raw")
    meta = split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id"]})
    assert "x1" in {c["name"] for c in meta["schema"]["categorical"]}


def test_a_forced_numeric_column_without_a_number_is_refused(tmp_path):
    frame = make_table(100)
    frame["x1"] = "-"
    write_table(frame, tmp_path / "raw")
    forced = BuildDatasetParams(table=TableBuildParams(numeric=["x1"], non_numeric="missing"))
    with pytest.raises(UserError, match=r"column 'x1', line \d+: no train cell is a usable number"):
        split_and_build(tmp_path / "raw", tmp_path, forced)


def test_blank_cells_are_missing_and_missing_words_are_named(tmp_path, caplog):
    frame = make_table(300)
    frame.loc[::25, "target"] = " "  # a space, as a cell cleared in some spreadsheets
    frame["colour"] = frame["colour"].astype(object)
    frame.loc[1::30, "colour"] = "  "
    frame.loc[2::10, "colour"] = "NA"  # North America, to the user; missing, to the reader
    write_table(frame, tmp_path / "raw")
    with caplog.at_level(logging.INFO, logger="torchstages"):
        meta = split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id"]})
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["classes"] == ["high", "low"]  # no class ' '
    assert summary["rows_without_target_dropped"] == 12
    colour = next(c for c in meta["schema"]["categorical"] if c["name"] == "colour")
    assert "  " not in colour["categories"] and "NA" not in colour["categories"]
    assert any(
        "column 'colour': 30 cells 'NA' in the file read as missing" in m for m in caplog.messages
    )
    # a class written as a missing-value word is dropped with its rows, and said so
    frame = make_table(300)
    frame.loc[::3, "target"] = "None"
    write_table(frame, tmp_path / "raw")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="torchstages"):
        split_table(tmp_path / "raw", tmp_path / "s", SplitParams())
    assert any("target 'target': 100 cells 'None' read as missing" in m for m in caplog.messages)


def test_empty_trailing_columns_and_a_repeated_header(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x1,x2,target,,\n1,2,a,,\n3,4,b,,\n")  # as spreadsheets save a used range
    frame = read_table(path)
    assert (
        list(frame.columns[:3]) == ["x1", "x2", "target"] and frame.iloc[:, 3:].isna().all().all()
    )
    path.write_text("x1,x2,target\n1,2,a\n3,4,b\nx1,x2,target\n5,6,a\n")
    with pytest.raises(UserError, match=r"t.csv: line 4 repeats the header"):
        read_table(path)
    path.write_text("x1,x2,target,,\n1,2,a,,\nx1,x2,target,,\n")
    with pytest.raises(UserError, match="line 3 repeats the header"):
        read_table(path)
    # a cell equal to its column's name is no repeated header unless two named columns are
    for text in ("a,\na,1\n", "yes,x\nno,1\nyes,2\n", "id,NA\nid,1\n1,2\n"):
        path.write_text(text)
        read_table(path)
    path.write_text(",\n1,2\n")  # every header cell empty: pandas' names would be duplicates
    read_table(path)


def test_a_wide_table_splits_without_warnings(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{i}": rng.normal(size=200).round(3) for i in range(150)})
    frame["target"] = np.where(frame["c0"] > 0, "a", "b")
    write_table(frame, tmp_path / "raw")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' PerformanceWarning, once per column
        split_table(tmp_path / "raw", tmp_path / "s", SplitParams())


def test_thousands_separators_are_named_when_many_values_are_small(tmp_path, caplog):
    frame = make_table(300)
    income = np.random.default_rng(0).normal(1000, 300, 300)
    frame["income"] = [f"{v:,.0f}" for v in income]  # "812" beside "1,254"
    write_table(frame, tmp_path / "raw")
    with caplog.at_level(logging.WARNING, logger="torchstages"):
        split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id"]})
    named = [m for m in caplog.messages if "'income'" in m]
    assert named and "thousands separators" in named[0]


def test_the_log_says_what_each_column_was_read_as(tmp_path, caplog):
    write_table(make_table(100), tmp_path / "raw")
    with caplog.at_level(logging.INFO, logger="torchstages"):
        split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id"]})
    said = next(m for m in caplog.messages if "columns read as" in m)
    assert said.endswith(
        "x1 numeric, x2 numeric, flag boolean, day datetime (year, month, day, day_of_week), "
        "colour categorical (3 levels)"
    )


def test_placeholders_are_punctuation_and_words_make_categories(tmp_path):
    """'-' and '?' stand for no value; a word ('S', 'unknown') beside numbers is a category."""
    from torchstages.tables.schema import fit_schema

    columns = {
        "placeholders": ["1.5", "2", "-", "?", "3", "4"] * 5,
        "sizes": ["8", "10", "12", "14", "S", "M", "L", "10", "12", "8"] * 3,
        "floors": ["1", "2", "3", "G", "B", "1"] * 5,
    }
    schema = fit_schema(
        pd.DataFrame({k: v[:30] for k, v in columns.items()}),
        list(columns),
        TableBuildParams(non_numeric="missing"),
        "t.csv",
    )
    assert [c["name"] for c in schema["numeric"]] == ["placeholders"]
    assert [c["name"] for c in schema["categorical"]] == ["sizes", "floors"]
    # the same rule decides a decimal-comma column: a word keeps it text, '-' does not
    path = tmp_path / "t.csv"
    path.write_text("x;y;z\nunknown;-;a\nunknown;-;b\n3,5;2,5;c\n4,5;1,5;d\n")
    frame = read_table(path)
    assert frame["x"].tolist()[2:] == ["3,5", "4,5"] and frame["y"].tolist()[2:] == ["2.5", "1.5"]
    # new rows for a model that reads 'b' as numbers: '0,3' beside the typo 'abc' is a number
    # there, so 'abc' is the cell named; a point-style column with one stray comma stays as is
    path.write_text("a;b;colour\n12,5;0,3;red\n8,1;abc;blue\n", encoding="utf-8")
    assert read_table(path)["b"].tolist() == ["0,3", "abc"]
    assert read_table(path, numbers=["b"])["b"].tolist() == ["0.3", "abc"]
    path.write_text("a;b\n1;1.5\n2;2.5\n3;4,5\n4;x\n", encoding="utf-8")
    assert read_table(path, numbers=["b"])["b"].tolist() == ["1.5", "2.5", "4,5", "x"]


def test_utf16_and_windows_text_read_as_latin1_are_named(tmp_path, caplog):
    path = tmp_path / "t.csv"
    path.write_bytes("a,target\n1,x\n2,y\n".encode("utf-16"))
    with pytest.raises(UserError, match=r"t.csv: is UTF-16 \(its first bytes say so\)"):
        read_table(path)
    path.write_bytes("a,target\n1,x\n2,y\n".encode("utf-32"))
    with pytest.raises(UserError, match=r"t.csv: is UTF-32"):
        read_table(path)
    path.write_bytes("a,target\n1,“x”\n2,y\n".encode("cp1252"))
    with caplog.at_level(logging.WARNING, logger="torchstages"):
        read_table(path, encoding="latin-1")
    assert any("line 2 holds the control character" in m and "cp1252" in m for m in caplog.messages)


def test_texts_keep_missing_value_words_and_drop_blank_labels(tmp_path):
    frame = make_texts(150)
    frame.loc[5, "text"] = "NA"  # a reply, not a missing text
    frame.loc[[7, 8, 9], "label"] = " "
    write_texts(frame, tmp_path / "raw")
    params = SplitParams.model_validate({"kind": "text", "seed": 1})
    summary = split_texts(tmp_path / "raw", tmp_path / "s", params)
    assert " " not in summary["classes"]
    rows = pd.concat(pd.read_csv(tmp_path / "s" / f"{n}.csv") for n in ("train", "val", "test"))
    assert len(rows) == 147  # the three without a label dropped, the 'NA' text kept


def test_series_ids_that_differ_only_in_spaces_or_case_are_refused(tmp_path):
    frame = make_panel(2, 120)
    frame.loc[1:119:2, "id"] = "s0 "
    write_series(frame, tmp_path / "raw")
    params = SplitParams.model_validate({"kind": "series", "series": {"id": "id"}})
    with pytest.raises(UserError, match=r"series ids \['s0', 's0 '\] in 'id' differ only"):
        split_series(tmp_path / "raw", tmp_path / "s", params)


def test_a_duplicate_time_names_its_own_lines(tmp_path):
    frame = make_series(120)
    frame = pd.concat([frame, frame.iloc[[50, 51]]], ignore_index=True)
    write_series(frame, tmp_path / "raw")
    params = SplitParams.model_validate({"kind": "series"})
    with pytest.raises(UserError, match=r"duplicate time '50' on lines \[52, 122\]"):
        split_series(tmp_path / "raw", tmp_path / "s", params)


def test_an_empty_trailing_column_is_not_a_series_candidate(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    frame = make_series(120).rename(columns={"value": "sales"})  # not a name taken as the target
    (raw / "s.csv").write_text(frame.to_csv(index=False, sep=";").replace("\n", ";\n"))
    params = SplitParams.model_validate({"kind": "series"})
    summary = split_series(raw, tmp_path / "s", params)
    assert summary["target"] == "sales"


def test_a_mostly_filled_series_is_named_with_its_longest_gap(tmp_path, caplog):
    frame = make_series(240, times="month")
    frame["value"] = frame["value"].astype(object)
    frame.loc[frame.index % 3 != 0, "value"] = ""  # two thirds of the months empty
    frame = frame.drop(index=range(100, 124))  # and two years missing
    write_series(frame, tmp_path / "raw")
    with caplog.at_level(logging.WARNING, logger="torchstages"):
        split_series(
            tmp_path / "raw", tmp_path / "s", SplitParams.model_validate({"kind": "series"})
        )
    said = next(m for m in caplog.messages if "made-up values" in m)
    assert "of 240 steps of 'value' were missing or empty" in said
    assert "the longest gap: 26 steps from 2008-05-01" in said


@pytest.mark.parametrize(
    ("cells", "named"),
    [  # times with a zone's name: only an offset is read
        (
            lambda i: f"2024-01-{1 + i % 28:02d} 13:{i % 60:02d}:00 CET",
            "holds times with a zone's name",
        ),
        # zero-padded codes: as numbers they lose their zeros
        (lambda i: f"{i % 40:05d}", "holds whole numbers written with leading zeros"),
    ],
)
def test_columns_read_otherwise_than_meant_are_named(tmp_path, caplog, cells, named):
    frame = make_table(100)
    frame["extra"] = [cells(i) for i in range(100)]
    write_table(frame, tmp_path / "raw")
    with caplog.at_level(logging.WARNING, logger="torchstages"):
        split_and_build(tmp_path / "raw", tmp_path, table={"drop": ["id"]})
    assert any(f"'extra' {named}" in m for m in caplog.messages)


def test_a_boolean_column_reads_one_and_zero():
    from torchstages.tables.schema import encode, fit_schema

    train = pd.DataFrame({"flag": ["true", "false", "yes", "no"] * 5})
    schema = fit_schema(train, ["flag"], TableBuildParams(), "train.csv")
    assert schema["numeric"][0]["type"] == "boolean"
    new = pd.DataFrame({"flag": ["1", "0", "True"]}, index=[2, 3, 4])
    numeric, _, _ = encode(new, schema, TableBuildParams(), "new.csv")
    assert numeric[:, 0].tolist() == [1.0, 0.0, 1.0]


def test_texts_without_spaces_get_a_hint_for_characters(tmp_path, caplog):
    from torchstages.text.build import build_texts

    frame = make_texts(150)
    phrases = {"sport": "这场比赛很精彩", "food": "这个菜很好吃", "weather": "今天下雨很冷"}
    frame["text"] = [
        phrases.get(label, "很好") + str(i % 5) for i, label in enumerate(frame["label"])
    ]
    write_texts(frame, tmp_path / "raw")
    split_texts(tmp_path / "raw", tmp_path / "s", SplitParams.model_validate({"kind": "text"}))
    with caplog.at_level(logging.WARNING, logger="torchstages"):
        build_texts(BuildDatasetParams(), tmp_path / "raw", tmp_path / "s", tmp_path / "p")
    assert any("build_dataset.text.level: char" in m for m in caplog.messages)


def test_excels_delimiter_note_and_a_price_with_a_dash_are_named(tmp_path):
    path = tmp_path / "raw" / "t.csv"
    path.parent.mkdir()
    for note in ("sep=;", "sep=\t", '"sep=,"'):
        path.write_text(f"{note}\nx1;target\n1;a\n2;b\n")
        with pytest.raises(UserError, match=r"line 1 is .*sep=.*, Excel's note of its delimiter"):
            read_table(path)
    frame = make_table(300, "regression")
    frame["target"] = frame["target"].astype(object)
    frame.loc[7, "target"] = "-"
    write_table(frame, tmp_path / "raw", "t.csv")
    with pytest.raises(UserError, match=r"line 9 holds '-': empty such cells .*dropped\)$"):
        split_table(tmp_path / "raw", tmp_path / "s", SplitParams())


def test_thousands_points_negatives_in_parentheses_and_utf16_without_a_mark(tmp_path, caplog):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    price = rng.integers(300, 5000, 300)
    frame = pd.DataFrame(
        {
            "price": [f"{p:,}".replace(",", ".") for p in price],  # 2.351 and 850
            "x": [f"{v:.2f}".replace(".", ",") for v in rng.normal(size=300)],
            "profit": [f"({-v:.1f})" if v < 0 else f"{v:.1f}" for v in rng.normal(size=300) * 30],
            "total": [
                f"{p:,}.00".replace(",", "#").replace(".", ",").replace("#", ".") for p in price
            ],
            "target": np.where(price > 2000, "ja", "nein"),
        }
    )
    (raw / "t.csv").write_text(frame.to_csv(index=False, sep=";"), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="torchstages"):
        split_and_build(raw, tmp_path)
    said = " | ".join(caplog.messages)
    assert "column 'price' holds" in said and "in a file that writes decimals with a comma" in said
    assert "column 'profit' holds numbers written with" in said and "parentheses" in said
    assert "column 'total' holds numbers written with" in said  # 2.351,00 beside 850,00
    (raw / "t.csv").write_bytes("x,target\n1,a\n2,b\n".encode("utf-16-le"))
    with pytest.raises(UserError, match="holds NUL bytes: UTF-16 without a byte-order mark"):
        read_table(raw / "t.csv")
