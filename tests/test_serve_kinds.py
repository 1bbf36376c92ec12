"""`torchstages serve` for the kinds sent as JSON (tables, texts, series): every endpoint and
error in-process, answers equal to `torchstages predict`'s for the same inputs (ONNX and .pt2),
and a table model under a real uvicorn burst on loopback."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import ROOT
from served_models import export_series, export_table, export_text
from tables_data import make_table
from test_predict import heavy_imports_of_predict
from test_serve import health_while_blocked
from torchstages.cli import main
from torchstages.deploy.runtime import load_runner
from torchstages.deploy.serve import Limits, create_app
from torchstages.tables.read import read_table

LIMITS = Limits(max_request_bytes=200_000, max_rows=50, max_text_chars=200)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return export_table(tmp_path_factory.mktemp("table"))


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    return export_text(tmp_path_factory.mktemp("text"))


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    return export_series(tmp_path_factory.mktemp("series"))


def client_for(model: Path, limits: Limits = LIMITS) -> TestClient:
    return TestClient(create_app(load_runner(model), limits))


def cli_csv(tmp_path: Path, *args: str) -> list[list[str]]:
    """`torchstages predict ... --output` (exit code 0) read back as CSV rows, header first."""
    out = tmp_path / "predict.csv"
    assert main(["predict", *args, "--output", str(out)]) == 0
    return list(csv.reader(out.open()))


def records(frame) -> list[dict]:
    """A read_table frame's rows as JSON objects (missing cells null)."""
    return [
        {k: (None if v != v else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


# --- tables ---------------------------------------------------------------------------------


def test_table_health_metadata_and_docs(table):
    model = table / "model.onnx"
    with client_for(model) as c:
        assert c.get("/health").json() == {"status": "ok"}
        meta = c.get("/metadata").json()
        openapi = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
    assert meta["model_version"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert meta["kind"] == "table" and meta["task"] == "classification"
    assert meta["target"] == "target" and meta["classes"] == ["high", "low"]
    assert meta["formats"] == ["onnx", "pt2"] and meta["format"] == "onnx"
    columns = {c["name"]: c for c in meta["columns"]}
    assert set(columns) == {"x1", "x2", "colour", "flag", "day"}  # "id" was dropped in the split
    assert columns["x1"]["type"] == "numeric" and columns["day"]["type"] == "datetime"
    assert columns["colour"]["categories"] == ["blue", "green", "red"]
    # the limits a table model applies, none of the image ones
    assert meta["limits"] == {"max_request_bytes": 200_000, "max_rows": 50, "top_k": 5}
    body = openapi["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/TableRequest")
    example = openapi["components"]["schemas"]["TableRequest"]["properties"]["rows"]["examples"]
    with client_for(model) as c:  # /docs' example row is one this model answers
        assert c.post("/predict", json={"rows": example[0]}).status_code == 200


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_table_rows_are_answered_as_predict_answers_the_file(table, tmp_path, fmt):
    raw = table.parent / "raw/table.csv"
    want = cli_csv(tmp_path, "--model", str(table / f"model.{fmt}"), str(raw))
    assert want[0] == ["line", "predicted_target", "probability"]
    rows = records(read_table(raw))[:40]
    for row in rows[::2]:  # numbers and booleans as JSON values, not only as text
        row["x1"] = float(row["x1"])
        row["flag"] = row["flag"] == "yes" if row["flag"] in ("yes", "no") else row["flag"]
    with client_for(table / f"model.{fmt}") as c:
        body = c.post("/predict", json={"rows": rows}, params={"top_k": 2}).json()
    assert (
        body["model_version"] == hashlib.sha256((table / f"model.{fmt}").read_bytes()).hexdigest()
    )
    got = body["predictions"]
    assert [p["row"] for p in got] == list(range(40))
    for p, (_, label, probability) in zip(got, want[1:41], strict=True):
        assert p["prediction"] == label == p["top"][0]["class"]
        assert p["top"][0]["probability"] == pytest.approx(float(probability), abs=2e-6)
        assert len(p["top"]) == 2 and p["top"][0]["probability"] >= p["top"][1]["probability"]


def test_a_regressor_answers_values_as_predict_does(tmp_path_factory, tmp_path):
    export = export_table(tmp_path_factory.mktemp("regression"), "regression", rows=120)
    raw = export.parent / "raw/table.csv"
    want = cli_csv(tmp_path, "--model", str(export / "model.onnx"), str(raw))
    assert want[0] == ["line", "predicted_target"]
    with client_for(export / "model.onnx") as c:
        meta = c.get("/metadata").json()
        assert meta["task"] == "regression" and "top_k" not in meta["limits"]
        got = c.post("/predict", json={"rows": records(read_table(raw))[:10]}).json()
        asked = c.post("/predict", json={"rows": records(read_table(raw))[:2]}, params={"top_k": 2})
        one = c.post("/predict", json={"rows": records(read_table(raw))[:2]}, params={"top_k": 1})
    assert (asked.status_code, asked.json()["part"]) == (400, "top_k")  # as predict refuses it
    assert one.status_code == 200  # predict's --top-k 1 is its default, accepted for any model
    assert [p["prediction"] for p in got["predictions"]] == [float(v) for _, v in want[1:11]]
    assert "top" not in got["predictions"][0]
    assert main(["predict", "--model", str(export / "model.onnx"), str(raw), "--top-k", "2"]) == 2


def test_predict_keeps_the_named_columns_beside_each_prediction(table, text, tmp_path, capsys):
    model, raw = str(table / "model.onnx"), table.parent / "raw/table.csv"
    plain = cli_csv(tmp_path, "--model", model, str(raw))
    kept = cli_csv(tmp_path, "--model", model, str(raw), "--keep", "id", "--keep", "colour")
    assert kept[0] == ["line", "id", "colour", "predicted_target", "probability"]
    frame = read_table(raw)
    assert [r[1] for r in kept[1:]] == frame["id"].tolist()  # dropped from the features
    assert [r[2] for r in kept[1:]] == frame["colour"].fillna("").tolist()  # missing: empty
    assert [[r[0], *r[3:]] for r in kept[1:]] == plain[1:]
    capsys.readouterr()
    assert main(["predict", "--model", model, str(raw), "--keep", "customer"]) == 2
    assert f"{raw}: --keep names column(s) ['customer']" in capsys.readouterr().err
    # a text model reading a table file keeps its columns too; --text has none to keep
    texts = text.parent / "raw/texts.csv"
    kept = cli_csv(tmp_path, "--model", str(text / "model.onnx"), str(texts), "--keep", "id")
    assert kept[0] == ["input", "id", "predicted_label", "probability"]
    assert [r[1] for r in kept[1:]] == read_table(texts)["id"].tolist()
    assert main(["predict", "--model", str(text / "model.onnx"), "--text", "hi", "--keep", "id"])
    assert "--text and .txt have none" in capsys.readouterr().err


def test_predict_refuses_a_text_column_for_other_models(table, series, tmp_path, capsys):
    """--column picks a text model's column; a table or series model would ignore it."""
    for model, kind in ((table / "model.onnx", "table"), (series / "model.onnx", "series")):
        raw = tmp_path / "rows.csv"
        assert main(["predict", "--model", str(model), str(raw), "--column", "text"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"error: --column names a text model's text column; this is a {kind} model"


def test_predict_names_a_table_file_that_is_not_there(table, series, tmp_path, capsys):
    for model in (table / "model.onnx", series / "model.onnx"):
        missing = tmp_path / "rows.csv"
        assert main(["predict", "--model", str(model), str(missing)]) == 2
        assert capsys.readouterr().err.strip() == f"error: {missing}: file not found"


def test_predict_names_a_bad_cell_without_build_settings(table, tmp_path, capsys):
    """A trained model's rows: the error names the cell, not build_dataset settings that would
    only help by training again."""
    frame = read_table(table.parent / "raw/table.csv")
    frame.loc[5, "x1"] = "abc"  # read_table indexes rows by their line: the header is line 1
    rows = tmp_path / "rows.csv"
    frame.to_csv(rows, index=False)
    assert main(["predict", "--model", str(table / "model.onnx"), str(rows)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {rows}: column 'x1', line 5: 'abc' is not a number"


def test_predict_names_what_training_never_saw(table, tmp_path, caplog):
    """Unseen categories are named with their rows; a missing cell in a column that had none in
    training is filled, and said to be."""
    frame = read_table(table.parent / "raw/table.csv")
    frame.loc[[2, 3], "colour"] = "purple"  # rows by their line in the file
    frame.loc[4, "colour"] = "Red"
    frame.loc[[5, 6, 7], "x1"] = None  # x1 has no missing value in training
    rows = tmp_path / "rows.csv"
    frame.to_csv(rows, index=False)
    with caplog.at_level("WARNING", logger="torchstages"):
        assert main(["predict", "--model", str(table / "model.onnx"), str(rows)]) == 0
    said = [r.getMessage() for r in caplog.records]
    assert (
        "predict: categories not seen in training, treated as 'other': 'colour' in 3 rows "
        "('purple', 'Red')" in said
    )
    assert (
        "predict: missing values where training had none, filled with the train median: "
        "'x1' in 3 rows" in said
    )


def test_predict_and_serve_read_cells_as_training_did(tmp_path, capsys):
    """A model built with non_numeric: missing predicts the very file it was trained on: its
    '?' cells (and a date that is none) are missing values there too, not errors, in predict
    and in serve alike."""
    frame = make_table(160)
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[::20, "x1"] = "?"  # 5%: the column stays numeric
    frame.loc[3, "day"] = "soon"
    model = export_table(tmp_path, frame=frame, build={"table": {"non_numeric": "missing"}})
    raw = tmp_path / "raw/table.csv"
    assert main(["predict", "--model", str(model / "model.onnx"), str(raw)]) == 0
    printed = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert len(printed) == 1 + len(frame)
    rows = read_table(raw).drop(columns=["target"]).head(4)
    records = [{k: None if v != v else v for k, v in r.items()} for r in rows.to_dict("records")]
    with client_for(model / "model.onnx") as c:
        response = c.post("/predict", json={"rows": records})
    assert response.status_code == 200, response.text
    served = [p["prediction"] for p in response.json()["predictions"]]
    assert served == [r[1] for r in printed[1:5]]  # rows 0 and 3 hold '?' and 'soon'


def test_the_missing_value_warnings_count_cells_read_as_missing_and_empty_categories():
    """Under non_numeric: missing, 'abc' is filled as an empty cell is: both are counted."""
    import numpy as np
    import pandas as pd

    from torchstages.tables.predict import unfamiliar

    schema = {
        "categorical": [],
        "numeric": [
            {"source": "x1", "indicator": False},
            *({"source": "day", "indicator": False, "part": p} for p in ("year", "month")),
        ],
    }
    frame = pd.DataFrame({"x1": ["abc", None, "1.5"], "day": ["soon", "2024-01-01", None]})
    numeric = np.array([[np.nan, np.nan, np.nan], [np.nan, 2024, 1], [1.5, np.nan, np.nan]])
    notes = unfamiliar(frame, numeric, schema)
    said = "missing values where training had none, filled with the train median: "
    assert notes == [said + "'x1' in 2 rows; 'day' in 2 rows"]
    # a category column training saw complete (and one it saw missing, and one of a model
    # that predates the record): only the first is named
    schema["categorical"] = [
        {"name": "job", "categories": ["a"], "missing": False},
        {"name": "town", "categories": ["b"], "missing": True},
        {"name": "old", "categories": ["c"]},
    ]
    frame = frame.assign(job=["a", None, None], town=[None, "b", None], old=[None, "c", "c"])
    said = "missing categories where training had none, given the missing index it never learned: "
    assert unfamiliar(frame, numeric, schema)[1:] == [said + "'job' in 2 rows"]


def test_predict_rows_top_k_and_formats(table, text, tmp_path, capsys):
    """--top-k and --format work for table and text models as for images (CSV by default)."""
    model, raw = str(table / "model.onnx"), str(table.parent / "raw/table.csv")
    top2 = cli_csv(tmp_path, "--model", model, raw, "--top-k", "2")
    assert top2[0] == ["line", "predicted_target", "probability", "class_2", "probability_2"]
    assert all(float(r[2]) >= float(r[4]) and r[1] != r[3] for r in top2[1:])
    capsys.readouterr()
    assert main(["predict", "--model", model, raw, "--top-k", "2", "--format", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [[str(v) for v in d.values()] for d in lines] == top2[1:]
    assert list(lines[0]) == top2[0]
    named = tmp_path / "rows.jsonl"  # an --output's suffix picks jsonl too
    assert main(["predict", "--model", model, raw, "--top-k", "2", "--output", str(named)]) == 0
    assert [json.loads(line) for line in named.read_text().splitlines()] == lines
    assert main(["predict", "--model", model, raw, "--format", "table"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].split() == ["line", "predicted_target", "probability"]
    assert len(shown) == len(top2) and shown[1].split() == top2[1][:3]
    texts = cli_csv(
        tmp_path, "--model", str(text / "model.onnx"), "--text", "goal!", "--top-k", "3"
    )
    assert texts[0][-2:] == ["class_3", "probability_3"] and len(texts[1]) == 7


def test_bad_table_requests_are_4xx_naming_the_row_and_field(table):
    good = {"x1": 0.5, "x2": 12, "colour": "red", "flag": "yes", "day": "2024-03-01"}
    cases = [
        ([good, {k: v for k, v in good.items() if k != "x2"}], 400, "rows[1]", "no 'x2'"),
        ([good, good, {**good, "x1": "abc"}], 400, "rows[2].x1", "'abc' is not a number"),
        ([{**good, "colour": ["red"]}], 400, "rows[0].colour", "a JSON list is not a cell"),
        ([{**good, "flag": "maybe"}], 400, "rows[0].flag", "'maybe' is not a boolean"),
        ([good, {**good, "day": "soon"}], 400, "rows[1].day", "'soon' is not a date"),
        ([{**good, "x2": 10**400}], 400, "rows[0].x2", "is not a finite number"),
        # finite in float64, inf in the model's float32 input: it answered null
        ([{**good, "x1": 1e39}], 400, "rows[0].x1", "is not a number a model holds (float32"),
        # within float32, but so far out that a layer overflows: it answered null too
        ([good, {**good, "x1": -3e38}], 400, "rows[1].x1", "the model's output overflows"),
        ([good] * 51, 413, "rows", "51 entries in rows; at most 50 a request"),
    ]
    with client_for(table / "model.onnx") as c:
        for rows, status, part, message in cases:
            response = c.post("/predict", json={"rows": rows})
            assert response.status_code == status, response.text
            assert response.json()["part"] == part and message in response.json()["error"]
        # unseen categories, missing cells and extra keys are fine, as in a file
        fine = {**good, "colour": "purple", "x2": None, "day": None, "target": "x", "extra": 1}
        answer = c.post("/predict", json={"rows": [fine]})
        assert answer.status_code == 200
        # what predict would warn about on stderr comes with the answer
        assert answer.json()["warnings"] == [
            "categories not seen in training, treated as 'other': 'colour' in 1 row ('purple')",
            "missing values where training had none, filled with the train median: 'day' in 1 row",
        ]
        assert "warnings" not in c.post("/predict", json={"rows": [good]}).json()
        for body, part in [
            ({"rows": "x1,x2"}, "rows"),
            ({"rows": [1, 2]}, "rows[0]"),
            ({"rows": []}, "rows"),
            ({"row": [good]}, "rows"),  # the missing field is named first
            ([good], None),
        ]:
            response = c.post("/predict", json=body)
            assert response.status_code == 422, (body, response.text)
            assert response.json()["part"] == part
        big = c.post("/predict", json={"rows": [{**good, "colour": "x" * 250_000}]})
        assert big.status_code == 413 and "over 200,000 bytes" in big.json()["error"]
        assert c.post("/predict", json={"rows": [good]}, params={"top_k": 0}).status_code == 422


def test_health_answers_while_json_inference_runs(table):
    """JSON inference is off the event loop too: /health answers while a batch computes."""
    row = {"x1": 0.5, "x2": 12, "colour": "red", "flag": "yes", "day": "2024-03-01"}
    assert health_while_blocked(table / "model.onnx", json={"rows": [row]}) == 200


# --- texts ----------------------------------------------------------------------------------


def test_text_metadata_and_answers_equal_predict(text, tmp_path):
    texts = ["the team scored a late goal", "Bake it with GARLIC!", "?", "rain and wind today"]
    args = [a for t in texts for a in ("--text", t)]
    for fmt in ("onnx", "pt2"):
        model = text / f"model.{fmt}"
        want = cli_csv(tmp_path, "--model", str(model), *args)
        with client_for(model) as c:
            meta = c.get("/metadata").json()
            got = c.post("/predict", json={"texts": texts}, params={"top_k": 3}).json()
        assert meta["kind"] == "text" and meta["max_len"] > 0 and meta["tokenizer"]["level"]
        assert meta["classes"] == ["food", "sport", "weather"]
        assert set(meta["limits"]) == {"max_request_bytes", "max_rows", "max_text_chars", "top_k"}
        for p, (_, label, probability) in zip(got["predictions"], want[1:], strict=True):
            assert p["prediction"] == label and len(p["top"]) == 3
            assert p["top"][0]["probability"] == pytest.approx(float(probability), abs=2e-6)
        assert [p["text"] for p in got["predictions"]] == [0, 1, 2, 3]


def test_empty_texts_get_no_class(text, tmp_path, caplog, capsys):
    """Training left empty texts out: predict keeps their rows without a class and says so."""
    with caplog.at_level("WARNING", logger="torchstages"):
        rows = cli_csv(
            tmp_path,
            "--model",
            str(text / "model.onnx"),
            "--text",
            "goal",
            "--text",
            " ",
            "--top-k",
            "2",
        )
    assert rows[2] == ["text 2", "", "", "", ""] and rows[1][1] in ("food", "sport", "weather")
    capsys.readouterr()
    assert (
        main(["predict", "--model", str(text / "model.onnx"), "--text", "", "--format", "jsonl"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {
        "input": "text 1",
        "predicted_label": None,
        "probability": None,
    }
    assert "predict: 1 empty text, left without a prediction: text 2" in caplog.text
    with client_for(text / "model.onnx") as c:
        response = c.post("/predict", json={"texts": ["goal", "  "]})
    assert (response.status_code, response.json()["part"]) == (400, "texts[1]")


def test_bad_text_requests_are_4xx_naming_the_text(text):
    with client_for(text / "model.onnx") as c:
        for body, status, part in [
            ({"texts": ["fine", "x" * 201]}, 413, "texts[1]"),
            ({"texts": ["a"] * 51}, 413, "texts"),
            ({"texts": ["fine", 3]}, 422, "texts[1]"),
            ({"texts": "one text"}, 422, "texts"),
            ({"texts": []}, 422, "texts"),
        ]:
            response = c.post("/predict", json=body)
            assert (response.status_code, response.json()["part"]) == (status, part), body
        assert (
            "201 characters, over the limit of 200"
            in c.post("/predict", json={"texts": ["x" * 201]}).json()["error"]
        )


# --- series ---------------------------------------------------------------------------------


def test_series_metadata_and_forecasts_equal_predict(series, tmp_path):
    raw = series.parent / "raw/series.csv"
    for fmt in ("onnx", "pt2"):
        model = series / f"model.{fmt}"
        want = cli_csv(tmp_path, "--model", str(model), str(raw))
        assert want[0] == ["series", "time", "step", "predicted_value"]
        # the last 10 steps of each series are enough (the model reads 8), in any order
        history = [r for r in records(read_table(raw)) if int(r["time"]) >= 50]
        history.reverse()
        with client_for(model) as c:
            meta = c.get("/metadata").json()
            got = c.post("/predict", json={"history": history}).json()
            schemas = c.get("/openapi.json").json()["components"]["schemas"]
            example = schemas["SeriesRequest"]["properties"]["history"]["examples"][0]
            # /docs' example is a history this model forecasts from
            assert c.post("/predict", json={"history": example}).status_code == 200
        assert (meta["lookback"], meta["horizon"], meta["series_ids"]) == (8, 3, ["s0", "s1"])
        assert meta["frequency"]["unit"] == "int" and (meta["time"], meta["id"]) == ("time", "id")
        assert meta["limits"] == {"max_request_bytes": 200_000, "max_rows": 50}
        flat = [
            [f["series"], str(s["time"]), str(s["step"]), s["value"]]
            for f in got["forecasts"]
            for s in f["forecast"]
        ]
        # integer times stay numbers, as the history gave them
        assert {type(s["time"]) for f in got["forecasts"] for s in f["forecast"]} == {int}
        assert [r[:3] for r in flat] == [r[:3] for r in want[1:]]
        assert [r[3] for r in flat] == pytest.approx([float(r[3]) for r in want[1:]], abs=2e-6)


def test_one_series_forecasts_without_an_id(tmp_path_factory, tmp_path, capsys):
    export = export_series(tmp_path_factory.mktemp("one-series"), series=1)
    raw = export.parent / "raw/series.csv"
    want = cli_csv(tmp_path, "--model", str(export / "model.onnx"), str(raw))
    assert want[0] == ["time", "step", "predicted_value"]
    assert "- one series (no id column)" in (export / "MODEL_CARD.md").read_text()
    capsys.readouterr()
    assert main(["predict", "--model", str(export / "model.onnx"), str(raw), "--top-k", "3"]) == 2
    assert "predicts values, not classes" in capsys.readouterr().err
    # the .pt2 file keeps the empty "id" the ONNX metadata has, and forecasts alike
    from_pt2 = cli_csv(tmp_path, "--model", str(export / "model.pt2"), str(raw))
    assert [r[:2] for r in from_pt2] == [r[:2] for r in want]
    assert [float(r[2]) for r in from_pt2[1:]] == pytest.approx(
        [float(r[2]) for r in want[1:]], abs=2e-6
    )
    history = records(read_table(raw))[-12:]
    with client_for(export / "model.onnx") as c:
        assert c.get("/metadata").json()["series_ids"] == []
        got = c.post("/predict", json={"history": history}).json()["forecasts"]
        short = c.post("/predict", json={"history": history[:3]}).json()
    assert [f["series"] for f in got] == [None]
    assert [[str(s["time"]), str(s["step"])] for s in got[0]["forecast"]] == [
        r[:2] for r in want[1:]
    ]
    assert [s["value"] for s in got[0]["forecast"]] == pytest.approx(
        [float(r[2]) for r in want[1:]], abs=2e-6
    )
    assert short == {
        "error": "history: the history has 3 time steps; the model reads the last 8",
        "part": "history",
    }


def test_predict_says_what_it_filled_in_a_history(series, tmp_path, caplog):
    import pandas as pd

    frame = read_table(series.parent / "raw/series.csv")
    times = frame["time"].astype(int)
    frame = frame[~((frame["id"] == "s0") & times.isin([40, 41]))].copy()
    frame.loc[(frame["id"] == "s1") & (frame["time"].astype(int) == 45), "value"] = None
    history = tmp_path / "history.csv"
    frame.to_csv(history, index=False)
    with caplog.at_level("WARNING", logger="torchstages"):
        assert main(["predict", "--model", str(series / "model.onnx"), str(history)]) == 0
    said = "2 missing time steps and 1 empty cells filled (interpolate, as in training)"
    assert [r.getMessage() for r in caplog.records] == [f"predict: {history}: {said}"]

    # serve answers the same history (its last steps: a request holds at most 50) with the same
    # words beside the forecasts, and a complete one without them
    def recent(table: pd.DataFrame) -> list[dict]:
        table = table[table["time"].astype(int) >= 36]
        return [
            {k: None if pd.isna(v) else v for k, v in r.items()} for r in table.to_dict("records")
        ]

    with client_for(series / "model.onnx") as c:
        answer = c.post("/predict", json={"history": recent(frame)}).json()
        whole = c.post(
            "/predict", json={"history": recent(read_table(series.parent / "raw/series.csv"))}
        )
    assert answer.get("warnings") == [said], answer
    assert "warnings" not in whole.json() and len(whole.json()["forecasts"]) == len(
        answer["forecasts"]
    )


def test_a_body_that_is_not_json_is_a_400_saying_so(table):
    """FastAPI's answers were `body.12: JSON decode error` with part `[12]` (a character
    offset that reads as a row) and, for bytes that are not UTF-8, `There was an error parsing
    the body`."""
    headers = {"content-type": "application/json"}
    with client_for(table / "model.onnx") as c:
        broken = c.post("/predict", content=b'{"rows": [ {', headers=headers)
        latin1 = c.post(
            "/predict",
            content='{"rows": [{"colour": "caf\xe9"}]}'.encode("latin-1"),
            headers=headers,
        )
    assert (broken.status_code, broken.json()) == (
        400,
        {
            "error": "the body is not valid JSON: Expecting property name enclosed in double "
            "quotes (at character 12)",
            "part": None,
        },
    )
    assert (latin1.status_code, latin1.json()["part"]) == (400, None)
    assert latin1.json()["error"] == (
        "the body is not UTF-8 (byte 0xe9 at position 25): send JSON as UTF-8"
    )
    with client_for(table / "model.onnx") as c:  # deeper than Python's parser goes
        deep = c.post("/predict", content=b"[" * 50_000 + b"]" * 50_000, headers=headers)
    assert (deep.status_code, deep.json()["part"]) == (400, None)
    assert deep.json()["error"] == "the body is not JSON this server can read (nested too deeply?)"


def test_bad_histories_are_4xx_naming_the_entry(series):
    steps = [{"id": "s0", "time": t, "value": 20 + t * 0.1} for t in range(10)]
    cases = [
        (steps[:5], "history", "series 's0' has 5 time steps; the model reads the last 8"),
        (
            [*steps, {"id": "s9", "time": 3, "value": 1}],
            "history[10].id",
            "'s9' was not in training",
        ),
        (
            [*steps[:3], {"id": "s0", "time": 3, "value": "n/a!"}],
            "history[3].value",
            "not a number",
        ),
        ([*steps, {"id": "s0", "time": 11}], "history[10]", "no 'value'"),
        ([*steps, {"id": "s0", "time": None, "value": 1}], "history[10].time", "time is empty"),
        ([*steps, {"id": "s0", "time": 9, "value": 1}], "history", "[history[9], history[10]]"),
        ([*steps, {"id": "s0", "time": "soon", "value": 1}], "history[10]", "time 'soon' is not"),
        ([*steps[:9], {"id": "s0", "time": 9, "value": "1e999"}], "history[9].value", "finite"),
        (  # 3, 4, 6, 7 and 8 missing: most of the window the model reads would be made up
            [*steps[:3], steps[5], steps[9]],
            "history",
            "series 's0': 5 of the last 8 time steps the model reads are missing on its grid "
            "(every 1 (integer times)) or empty; filled by interpolate they would be made up",
        ),
    ]
    with client_for(series / "model.onnx") as c:
        assert c.post("/predict", json={"history": steps}).status_code == 200
        for history, part, message in cases:
            response = c.post("/predict", json={"history": history})
            assert response.status_code == 400, (part, response.text)
            assert response.json()["part"] == part and message in response.json()["error"]
        wrong = c.post("/predict", json={"history": {"time": 1}})
        assert (wrong.status_code, wrong.json()["part"]) == (422, "history")


# --- no torch on the ONNX path; a real server -----------------------------------------


def test_table_onnx_predict_imports_no_torch(table):
    """The table, text and series paths of predict run on ONNX Runtime alone, as images do."""
    model, rows, out = table / "model.onnx", table.parent / "raw/table.csv", table.parent / "p.csv"
    assert heavy_imports_of_predict("--model", str(model), str(rows), "--output", str(out)) == (
        0,
        [],
    )


@pytest.mark.slow
def test_real_uvicorn_burst_of_table_rows(table, monkeypatch):
    """500 JSON requests, 8 at a time, to a real `torchstages serve` of a table model on
    127.0.0.1: every answer right, none failed."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from serve_burst import burst, running_server

    rows = records(read_table(table.parent / "raw/table.csv"))[:24]
    payloads = [{"json": {"rows": rows[i : i + 3]}} for i in range(0, len(rows), 3)]
    with client_for(table / "model.onnx") as c:
        want = [c.post("/predict", **p).json()["predictions"] for p in payloads]
    with running_server(table / "model.onnx", src=ROOT / "src") as server:
        start = time.monotonic()
        answers, _ = burst(server.url, payloads, requests=500, concurrency=8)
        assert time.monotonic() - start < 300
    assert [a.status for a in answers] == [200] * 500
    for i, a in enumerate(answers):
        assert a.body["predictions"] == want[i % len(payloads)], i
    assert "Finished server process" in server.log
