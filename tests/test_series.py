"""Time series: reading and regularising, the chronological split and its leakage proof,
train-range scaling and windows, season detection, the metrics and baselines, the models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from series_data import make_panel, make_series, write_series
from torchstages.errors import UserError
from torchstages.models import build_series_model, parse_spec
from torchstages.params.build_dataset import SeriesBuildParams
from torchstages.params.split import SeriesSplitParams, SplitParams
from torchstages.params.train import TrainParams
from torchstages.series.build import build_series, detect_season, window_starts
from torchstages.series.evaluate import (
    baselines,
    forecast_metrics,
    mase_scales,
    unscaled_series,
)
from torchstages.series.read import Frequency, read_series, resolve_series_columns
from torchstages.series.split import check_chronological, read_series_splits, split_series
from torchstages.tables.read import read_table
from torchstages.training.data import params_for_kind

BUILD = SeriesBuildParams(lookback=12, horizon=4)


def split_and_build(raw: Path, root: Path, split: dict | None = None, **build) -> Path:
    params = SplitParams.model_validate({"kind": "series", "series": split or {}})
    split_series(raw, root / "splits", params)
    build_series(BUILD.model_copy(update=build), root / "splits", root / "processed")
    return root / "processed"


def read(frame: pd.DataFrame, tmp_path: Path, **params):
    path = write_series(frame, tmp_path)
    table = read_table(path)
    cols = resolve_series_columns(table, SeriesSplitParams.model_validate(params), path)
    return read_series(table, cols, params.get("fill", "interpolate"), str(path))


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (["3", "8", "13", "18"], ("int", 5, "13")),
        (["2001-01", "2001-02", "2001-03", "2001-04"], ("month", 1, "2001-03")),
        (["2001-01-31", "2001-02-28", "2001-03-31", "2001-04-30"], ("month", 1, "2001-03-31")),
        (["2001-01-01", "2001-04-01", "2001-07-01", "2001-10-01"], ("month", 3, "2001-07-01")),
        (
            ["2020-03-01", "2020-03-02", "2020-03-03", "2020-03-04"],
            ("ns", 86400 * 10**9, "2020-03-03"),
        ),
        (
            ["2020-03-01 10:00", "2020-03-01 11:00", "2020-03-01 12:00", "2020-03-01 13:00"],
            ("ns", 3600 * 10**9, "2020-03-01T12:00:00"),
        ),
    ],
)
def test_integer_date_and_datetime_times_and_their_frequency(tmp_path, times, expected):
    frame = pd.DataFrame({"date": times, "sales": [1.0, 2.0, 3.0, 4.0]})
    (series,), freq, report = read(frame, tmp_path)
    assert (freq.unit, freq.step, series.times[2]) == expected
    assert report == {"unsorted_series": 0, "gaps": 0, "empty_cells": {}}
    # the times after the end continue the grid (what predict labels its forecasts with)
    future = freq.future(series.times[-1], 2)
    assert Frequency.from_dict(freq.to_dict()) == freq and len(set(future)) == 2
    assert future[0] > series.times[-1]


def test_a_stray_day_among_monthly_dates_is_named_by_its_own_line(tmp_path):
    months = pd.date_range("2001-01-01", periods=40, freq="MS").strftime("%Y-%m-%d").tolist()
    months[25] = months[25][:-2] + "20"  # one reading typed on the 20th
    frame = pd.DataFrame({"date": months, "sales": np.arange(40.0)})
    with pytest.raises(UserError, match=r"line 27: time '2003-02-20' is not on day 1, as 98%"):
        read(frame, tmp_path)


@pytest.mark.parametrize(
    ("day", "written"),
    [(30, ["2001-01-30", "2001-02-28", "2001-03-30"]), (15, ["2001-01-15", "2001-02-15"])],
)
def test_monthly_readings_on_any_day_stay_on_it(tmp_path, day, written):
    """Readings on the 30th (February on its last day) are monthly, not 'every 30 days' with
    February off the grid; on the 15th, their times and forecasts stay on the 15th (they were
    written as the 1st)."""
    starts = pd.date_range("2001-01-01", periods=24, freq="MS")
    days = [t.replace(day=min(day, t.days_in_month)).strftime("%Y-%m-%d") for t in starts]
    (series,), freq, report = read(pd.DataFrame({"date": days, "sales": np.arange(24.0)}), tmp_path)
    assert (freq.describe(), report["gaps"]) == ("monthly", 0)
    assert series.times == days and series.times[: len(written)] == written
    assert freq.future(series.times[-1], 2, series.day) == [
        f"2003-01-{day}",
        "2003-02-28" if day == 30 else "2003-02-15",
    ]
    assert Frequency.from_dict(freq.to_dict()) == freq


def test_a_panels_series_each_keep_their_own_day_of_the_month(tmp_path):
    starts = pd.date_range("2001-01-01", periods=24, freq="MS")
    on = {
        key: [t.replace(day=day).strftime("%Y-%m-%d") for t in starts]
        for key, day in (("a", 1), ("b", 10), ("c", 10))
    }
    frame = pd.concat(
        pd.DataFrame({"store": key, "date": days, "sales": np.arange(24.0)})
        for key, days in on.items()
    )
    series, freq, _ = read(frame, tmp_path, id="store")
    assert freq.describe() == "monthly" and freq.day == 10  # the most common day
    assert [s.times for s in series] == list(on.values())
    assert [s.day for s in series] == [1, 10, 10]


def test_months_written_without_a_day_are_written_so(tmp_path):
    """airline_passengers.csv writes 1949-01: its forecasts read 1961-01, not 1961-01-01."""
    months = pd.date_range("1949-01-01", periods=30, freq="MS").strftime("%Y-%m").tolist()
    (series,), freq, _ = read(
        pd.DataFrame({"month": months, "passengers": np.arange(30.0)}), tmp_path
    )
    assert series.times == months and freq.future(months[-1], 2) == ["1951-07", "1951-08"]
    assert Frequency.from_dict(freq.to_dict()) == freq


def test_two_readings_on_one_step_of_a_models_grid_are_refused(tmp_path):
    """A monthly model given two readings in one month, or daily readings: the later would
    silently replace the earlier (and a negative count of filled steps was logged)."""
    month_ends = pd.date_range("2001-01-31", periods=30, freq="ME").strftime("%Y-%m-%d")
    (_,), freq, _ = read(pd.DataFrame({"date": month_ends, "sales": np.arange(30.0)}), tmp_path)
    history = pd.DataFrame({"date": [*month_ends[-12:], "2003-06-15"], "sales": ["1"] * 13})
    cols = {"time": "date", "target": "sales", "id": None, "covariates": []}
    said = r"lines \[13, 14\]: times '2003-06-30' and '2003-06-15' fall on one step \(monthly\)"
    with pytest.raises(UserError, match=said):
        read_series(history, cols, "interpolate", "history.csv", freq)


def test_local_times_across_a_summer_time_switch_become_one_utc_grid(tmp_path):
    # exported local time: the offset goes from +0100 to +0200 on 2021-03-28
    local = pd.date_range("2021-03-27", periods=72, freq="h", tz="Europe/Berlin")
    frame = pd.DataFrame({"time": local.strftime("%Y-%m-%dT%H:%M:%S%z"), "value": range(72)})
    (series,), freq, report = read(frame, tmp_path)
    assert (freq.unit, freq.step) == ("ns", 3600 * 10**9) and report["gaps"] == 0
    # written in UTC, and marked so: a forecast after the history reads as after it
    assert series.times[0] == "2021-03-26T23:00:00Z" and series.times[-1] == "2021-03-29T22:00:00Z"
    assert freq.future(series.times[-1], 2) == ["2021-03-29T23:00:00Z", "2021-03-30T00:00:00Z"]
    assert Frequency.from_dict(freq.to_dict()) == freq and freq.to_dict()["utc"] is True
    # a history for this model without offsets would be read an hour or two off: refused
    naive = frame.assign(time=local.strftime("%Y-%m-%dT%H:%M:%S"))
    cols = {"time": "time", "target": "value", "id": None, "covariates": []}
    with pytest.raises(UserError, match="times without UTC offsets, for a model trained on"):
        read_series(naive, cols, "interpolate", "history.csv", freq)


@pytest.mark.parametrize("at", ["00:00", "09:00"])
def test_daily_local_readings_across_a_summer_time_switch_keep_their_local_time(tmp_path, at):
    # in UTC they would be 23:00 (or 08:00) before the switch and 22:00 (07:00) after it
    local = pd.date_range(f"2024-03-01 {at}", periods=60, freq="D", tz="Europe/Berlin")
    frame = pd.DataFrame({"time": [t.isoformat() for t in local], "value": range(60)})
    (series,), freq, report = read(frame, tmp_path)
    assert (freq.unit, freq.step) == ("ns", 86400 * 10**9) and report["gaps"] == 0
    assert series.times[30] == ("2024-03-31" if at == "00:00" else f"2024-03-31T{at}:00")


@pytest.mark.parametrize(
    "times", [["20240331T000000+0100", "20240331T030000+0200"], ["2024-01-01 10:00 GMT"] * 2]
)
def test_basic_iso_and_named_zones_are_read_as_utc(times):
    from torchstages.series.read import _parse_times

    read = _parse_times(pd.Series(times), "f")
    parsed = read.times
    assert not read.integer and read.utc == times[0].startswith("2024033") and parsed.dt.tz is None
    basic = times[0].startswith("20240331T")
    assert parsed[0] == pd.Timestamp("2024-03-30 23:00" if basic else "2024-01-01 10:00")


def test_an_offset_after_utc_or_gmt_is_refused_not_guessed(tmp_path):
    frame = pd.DataFrame({"time": ["2024-01-01 10:00 UTC+01:00"] * 2, "value": [1, 2]})
    with pytest.raises(UserError, match=r"line 2: .* after UTC or GMT, .*write it as \+01:00"):
        read(frame, tmp_path)


def test_times_with_and_without_a_utc_offset_are_refused_naming_the_line(tmp_path):
    times = ["2021-01-01 00:00+01:00", "2021-01-01 01:00+01:00", "2021-01-01 02:00"]
    frame = pd.DataFrame({"time": times * 10, "value": range(30)})
    with pytest.raises(UserError, match=r"line 4: time '2021-01-01 02:00' has no UTC offset"):
        read(frame, tmp_path)


@pytest.mark.parametrize(
    ("unit", "step", "said"),
    [
        ("int", 5, "every 5 (integer times)"),
        ("month", 3, "quarterly"),
        ("ns", 3600 * 10**9, "hourly"),
        ("ns", 86400 * 10**9, "daily"),
        ("ns", 15 * 60 * 10**9, "every 15 minutes"),
        ("ns", 2 * 86400 * 10**9, "every 2 days"),
        ("ns", 10**9, "every second"),
    ],
)
def test_a_frequency_is_described_in_words(unit, step, said):
    assert Frequency(unit, step, False, False).describe() == said


def test_unsorted_rows_are_sorted_and_reported(tmp_path):
    frame = make_series(60)
    shuffled = frame.sample(frac=1, random_state=0)
    (s1,), _, r1 = read(frame, tmp_path / "a")
    (s2,), _, r2 = read(shuffled, tmp_path / "b")
    assert (r1["unsorted_series"], r2["unsorted_series"]) == (0, 1)
    assert s1.times == s2.times and np.array_equal(s1.values, s2.values)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: pd.concat([f, f.iloc[[5]]]), r"duplicate time '5' .*lines \[7, 62\]"),
        (
            lambda f: f.assign(value=f["value"].astype(str).where(f.index != 9, "abc")),
            r"column 'value', line 11: 'abc' is not a number",
        ),
        (
            lambda f: f.assign(value=f["value"].astype(str).where(f.index != 4, "-inf")),
            r"column 'value', line 6: '-inf' is not a finite number",
        ),
        (
            lambda f: f.assign(value=f["value"].astype(str).where(f.index != 4, "1e39")),
            r"column 'value', line 6: '1e39' is not a number a model holds \(float32",
        ),
        (
            lambda f: f.assign(time=f["time"].where(f.index != 3, "soon")),
            r"line 5: time 'soon' is not an integer like the other times",
        ),
        (lambda f: f.rename(columns={"time": "when"}), r"no column named time/date"),
        (  # a panel whose id column is not set: the text column is named as the likely id
            lambda f: f.rename(columns={"value": "sales"}).assign(store="north", price=1.0),
            r"among \['sales', 'store', 'price'\]: set split.series.target \(and "
            r"split.series.id: store, if it names each series\)",
        ),
        (  # parsed cell by cell, 01.02 would be January and 13.02 February
            lambda f: f.assign(
                time=(
                    pd.Timestamp("2020-01-01") + pd.to_timedelta(f["time"].astype(int), "D")
                ).dt.strftime("%d.%m.%Y")
            ),
            r"line 2: time '01.01.2020' has day and month in a local order, .*YYYY-MM-DD",
        ),
    ],
)
def test_bad_series_input_is_one_line_naming_where(tmp_path, edit, message):
    with pytest.raises(UserError, match=message):
        read(edit(make_series(60)), tmp_path)


def test_a_mistyped_time_column_is_named_not_blamed_on_the_target(tmp_path):
    frame = pd.DataFrame({"Month": ["1949-01", "1949-02", "1949-03"], "Passengers": [1, 2, 3]})
    with pytest.raises(UserError, match=r"split.series.time: no column 'Mnth' \(columns: \["):
        read(frame, tmp_path, time="Mnth")


def test_gaps_and_empty_cells_are_filled_by_the_rule_or_refused(tmp_path):
    frame = make_series(40).drop(index=[10, 11]).reset_index(drop=True)
    frame.loc[20, "value"] = np.nan
    (s,), _, report = read(frame, tmp_path / "i")
    assert report["gaps"] == 2 and report["empty_cells"] == {"value": 1}
    assert len(s.times) == 40 and s.filled.sum() == 3
    before, after = s.values[9, 0], s.values[12, 0]
    assert np.allclose(s.values[10:12, 0], before + (after - before) * np.array([1, 2]) / 3)
    (f,), _, _ = read(frame, tmp_path / "f", fill="ffill")
    assert f.values[10, 0] == f.values[11, 0] == before
    with pytest.raises(UserError, match=r"2 missing time steps .*first \['10', '11'\]"):
        read(frame, tmp_path / "e", fill="error")


def test_split_is_chronological_and_the_leakage_check_refuses_overlap(tmp_path):
    write_series(make_series(100).sample(frac=1, random_state=1), tmp_path / "raw")
    summary = split_series(tmp_path / "raw", tmp_path / "splits", SplitParams(kind="series"))
    assert summary["totals"] == {"train": 70, "val": 15, "test": 15}
    assert summary["ranges"][""] == {
        "train": ["0", "69"],
        "val": ["70", "84"],
        "test": ["85", "99"],
    }
    assert summary["rows_out_of_order"] is True and summary["leakage_check"].startswith("passed")
    _, split = read_series_splits(tmp_path / "splits")
    assert split.bounds[""] == {"train": (0, 70), "val": (70, 85), "test": (85, 100)}
    ok = {"train": [(0, 69)], "val": [(70, 84)], "test": [(85, 99)]}
    check_chronological(ok)
    for bad in ({**ok, "val": [(60, 84)]}, {**ok, "test": [(80, 99)]}, {**ok, "train": [(70, 69)]}):
        with pytest.raises(AssertionError, match="not chronological"):
            check_chronological(bad)


def test_windows_never_cross_a_split_boundary():
    bounds = {"train": (0, 70), "val": (70, 85), "test": (85, 100)}
    starts = window_starts(bounds, lookback=12, horizon=4, stride=3)
    assert starts["train"][0] == 12 and starts["train"][-1] + 4 <= 70
    assert np.all(np.diff(starts["train"]) == 3) and np.all(np.diff(starts["val"]) == 1)
    for name, (lo, hi) in bounds.items():
        # every target step of every window lies inside its own split
        assert starts[name].min() >= lo and starts[name].max() + 4 <= hi, name
    # val's first window reads its 12 inputs from the end of train: history, not the future
    assert starts["val"][0] - 12 < 70 <= starts["val"][0]


def test_a_future_value_never_reaches_train_windows_or_the_scaler(tmp_path):
    """Perturb val and test values: the train arrays and the fitted scaling stay byte-identical,
    so the model cannot have seen them; the test arrays do change (the check can fail)."""
    frame = make_series(120)
    write_series(frame, tmp_path / "a")
    changed = frame.copy()
    changed.loc[90:, "value"] = changed.loc[90:, "value"] * 10 + 1000  # val (84..101) and test
    write_series(changed, tmp_path / "b")
    a = split_and_build(tmp_path / "a", tmp_path / "pa")
    b = split_and_build(tmp_path / "b", tmp_path / "pb")
    meta_a, meta_b = (json.loads((p / "meta.json").read_text()) for p in (a, b))
    assert meta_a["scaler"] == meta_b["scaler"]
    for name in ("train_windows.npy", "train_targets.npy", "train_index.npy"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "test_targets.npy").read_bytes() != (b / "test_targets.npy").read_bytes()


def test_build_scales_on_train_only_and_writes_float32_windows(tmp_path):
    write_series(make_series(120), tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path, scaler="minmax", calendar=True)
    meta = json.loads((processed / "meta.json").read_text())
    assert meta["features"] == ["value"] and meta["calendar"] == []  # integer times: no calendar
    windows, targets = (
        np.load(processed / "train_windows.npy"),
        np.load(processed / "train_targets.npy"),
    )
    assert windows.dtype == targets.dtype == np.float32
    assert windows.shape[1:] == (12, 1) and targets.shape[1] == 4
    # minmax on the train range: train values span exactly 0..1
    assert windows.min() == pytest.approx(0, abs=1e-6) and windows.max() == pytest.approx(
        1, abs=1e-6
    )
    assert meta["season"] == 12  # the ACF of the differenced train range finds the sine's period


def test_calendar_features_for_daily_data(tmp_path):
    write_series(make_series(150, period=7, times="day"), tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path, calendar=True)
    meta = json.loads((processed / "meta.json").read_text())
    assert meta["features"] == ["value", "month_sin", "month_cos", "weekday_sin", "weekday_cos"]
    assert meta["season"] == 7
    windows = np.load(processed / "val_windows.npy")
    assert np.allclose(windows[..., 3] ** 2 + windows[..., 4] ** 2, 1, atol=1e-6)


def test_panel_is_split_and_scaled_per_series(tmp_path):
    write_series(make_panel(3, 100), tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path, split={"id": "id"})
    meta = json.loads((processed / "meta.json").read_text())
    assert meta["series_ids"] == ["s0", "s1", "s2"]
    shifts = [s[0] for s in meta["scaler"]["shift"]]
    assert shifts[0] < shifts[1] < shifts[2]  # each series its own train mean
    index = np.load(processed / "test_index.npy")
    assert sorted(set(index[:, 0].tolist())) == [0, 1, 2]
    summary = json.loads((tmp_path / "splits/summary.json").read_text())
    assert summary["ranges"]["s1"]["test"] == ["85", "99"]


def test_a_series_shorter_than_three_windows_is_refused(tmp_path):
    write_series(make_series(47), tmp_path / "raw")
    with pytest.raises(
        UserError, match=r"47 time steps, fewer than .*lookback 12 \+ horizon 4\) x 3 = 48"
    ):
        split_and_build(tmp_path / "raw", tmp_path)


def test_season_detection():
    freq = Frequency("int", 1)
    t = np.arange(300)
    assert detect_season(freq, [np.sin(2 * np.pi * t / 24) + 0.01 * t]) == 24
    assert detect_season(freq, [np.random.default_rng(0).normal(size=300)]) == 1
    assert detect_season(Frequency("month", 1), [t.astype(float)]) == 12


def test_metrics_and_naive_baselines_on_a_known_case():
    y = np.tile(np.arange(4.0), 10) + 1  # 1 2 3 4 repeated: the seasonal naive is exact
    index = np.array([[0, 20], [0, 21]])
    arrays = baselines([y], index, horizon=6, season=4)
    assert np.array_equal(arrays["actual"][0], y[20:26])
    assert np.array_equal(arrays["seasonal_naive"], arrays["actual"])
    assert np.all(arrays["naive"][0] == y[19])
    scale = mase_scales([y[:21]], season=1)  # the one-step naive error: steps 1, 1, 1, 3
    assert scale[0] == 1.5
    m = forecast_metrics(arrays["naive"], arrays["actual"], scale[index[:, 0]])
    err = np.abs(arrays["naive"] - arrays["actual"])
    assert m["mae"] == pytest.approx(err.mean(), abs=1e-6)
    assert m["mase"] == pytest.approx(err.mean() / 1.5, abs=1e-6)
    assert m["rmse"] == pytest.approx(np.sqrt((err**2).mean()), abs=1e-6)
    assert len(m["per_step"]["smape"]) == 6
    f, a = arrays["naive"], arrays["actual"]
    smape = np.where(np.abs(a) + np.abs(f) > 0, 200 * err / (np.abs(a) + np.abs(f)), 0).mean()
    assert m["smape"] == pytest.approx(smape, abs=1e-4)
    assert forecast_metrics(arrays["seasonal_naive"], arrays["actual"], scale)["mase"] == 0
    # a train range that repeats exactly each season gives MASE no scale: named, MASE = MAE
    assert unscaled_series([y[:21], y[:21] + np.arange(21)], season=4) == [0]
    assert unscaled_series([y[:21]], season=1) == [] and mase_scales([y[:21]], 4)[0] == 1.0


def test_filled_targets_are_inputs_but_never_scored(tmp_path):
    """Values the split interpolated into a gap are easy to forecast: scoring them flattered the
    model and both baselines. Metrics, predictions.csv and compare score read values only."""
    from torchstages.evaluation.compare import compare_predictions, load_predictions
    from torchstages.models.saved import load_model
    from torchstages.series.evaluate import evaluate_series
    from torchstages.training.loop import TrainOutputs, train

    frame = make_series(120)
    gap = [104, 105, 106]  # inside the test range (steps 102-119)
    write_series(frame.drop(index=gap).reset_index(drop=True), tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path)
    outputs = TrainOutputs(*(tmp_path / "m" / n for n in ("w.safetensors", "m.json", "c.pt", "l")))
    train(TrainParams.model_validate({"epochs": 1, "threads": 1}), processed, outputs)
    model, card = load_model(outputs.weights, outputs.card)
    predictions = tmp_path / "predictions.csv"
    metrics, arrays = evaluate_series(
        "test", model, card, processed, tmp_path / "splits", tmp_path / "plots", 64,
        torch.device("cpu"), predictions,
    )  # fmt: skip
    index = np.load(processed / "test_index.npy")
    steps = index[:, 1:2] + np.arange(card["horizon"])
    made_up = np.isin(steps, gap)
    assert made_up.any() and metrics["filled_targets_not_scored"] == int(made_up.sum())
    read = frame["value"].to_numpy()[steps]  # the file's own values, never the filled ones
    error = np.abs(arrays["forecast"] - read)[~made_up]
    assert metrics["mae"] == pytest.approx(error.mean(), abs=1e-5)
    naive = np.abs(arrays["naive"] - read)[~made_up]
    assert metrics["baselines"]["naive"]["mae"] == pytest.approx(naive.mean(), abs=1e-5)
    rows = predictions.read_text().splitlines()[1:]
    assert sum(r.split(",")[4] == "" for r in rows) == int(made_up.sum())
    run = load_predictions(None, predictions)
    mae = compare_predictions(run, run).statistics[0]
    assert mae.name == "MAE" and mae.a == pytest.approx(metrics["mae"], abs=1e-5)


def test_a_series_that_repeats_each_season_is_named_and_its_mase_counted(tmp_path, caplog):
    from torchstages.models.saved import load_model
    from torchstages.series.evaluate import evaluate_series
    from torchstages.training.loop import TrainOutputs, train

    frame = make_series(120, noise=0.0)
    frame["value"] = np.tile(frame["value"][:12].to_numpy(), 10)  # one season, again and again
    write_series(frame, tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path, season=12)
    outputs = TrainOutputs(*(tmp_path / "m" / n for n in ("w.safetensors", "m.json", "c.pt", "l")))
    train(TrainParams.model_validate({"epochs": 1, "threads": 1}), processed, outputs)
    model, card = load_model(outputs.weights, outputs.card)
    with caplog.at_level("WARNING", logger="torchstages"):
        metrics, _ = evaluate_series(
            "test",
            model,
            card,
            processed,
            tmp_path / "splits",
            tmp_path / "p",
            64,
            torch.device("cpu"),
        )
    assert metrics["mase_is_mae_for_series"] == 1 and metrics["mase"] == metrics["mae"]
    assert "test: the series repeats exactly each season in the train range" in caplog.text


def test_the_report_says_when_mase_is_the_mae():
    from torchstages.evaluation.report import _baselines

    m = {"mase": 0.1, "smape": 1.0, "mae": 0.1, "rmse": 0.1}
    metrics = {**m, "baselines": {"naive": m, "seasonal_naive": {**m, "mase": 0.0}}}
    metrics |= {"beats_naive": False, "beats_seasonal_naive": False, "season": 12}
    assert not any("no scale" in line for line in _baselines(metrics))
    said = "\n".join(_baselines({**metrics, "mase_is_mae_for_series": 1}))
    assert "MASE has no scale for the series: it repeats" in said and "its MASE is its MAE" in said
    said = "\n".join(_baselines({**metrics, "mase_is_mae_for_series": 3}))
    assert "MASE has no scale for 3 series: each repeats" in said and "their MASE is" in said


@pytest.mark.parametrize("name", ["lstm", "gru", "mlp", "tcn"])
def test_every_forecaster_outputs_the_horizon_and_starts_from_the_last_value(name):
    torch.manual_seed(0)
    model = build_series_model(parse_spec({"name": name}), 2, 10, 3, relative=True)
    window = torch.randn(5, 10, 2)
    assert model(window).shape == (5, 3)
    # relative inputs: shifting the whole target history shifts the forecast by as much
    shifted = window.clone()
    shifted[:, :, 0] += 7.0
    assert torch.allclose(model.eval()(shifted), model(window) + 7.0, atol=1e-4)
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    # a zero head is the naive forecast: every step equals the last target value
    assert torch.equal(model(window), window[:, -1, :1].expand(5, 3))


def test_the_window_mlp_linear_path_reads_the_scaled_values_not_the_relative_ones():
    torch.manual_seed(0)
    model = build_series_model(parse_spec({"name": "mlp"}), 1, 6, 2, relative=True).eval()
    # a submodule (trained, saved), zero at the start: the naive forecast plus the MLP's
    assert {"linear.weight", "linear.bias"} <= set(model.state_dict())
    assert not model.linear.weight.any() and not model.linear.bias.any()
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    with torch.no_grad():
        model.linear.weight[:, -1] = -0.5  # halfway back to the train mean (0 when scaled)
    for level in (0.0, 4.0, -3.0):
        constant = torch.full((1, 6, 1), level)
        # relative inputs alone could never pull a constant window towards the mean
        assert torch.allclose(model(constant), torch.full((1, 2), level / 2))


def test_series_defaults_and_losses():
    meta = {"kind": "series", "task": "forecast"}
    params = params_for_kind(TrainParams(), meta)
    assert (params.model.name, params.precision, params.loss, params.monitor, params.threads) == (
        "mlp",
        "fp32",
        "mse",
        "val_loss",
        1,
    )
    chosen = params_for_kind(
        TrainParams.model_validate({"loss": "mae", "model": {"name": "tcn"}}), meta
    )
    assert (chosen.loss, chosen.model.name) == ("mae", "tcn")
    with pytest.raises(UserError, match="val_accuracy needs classes; a forecast uses val_loss"):
        params_for_kind(TrainParams(monitor="val_accuracy"), meta)
    with pytest.raises(UserError, match="cnn does not take series; for series use lstm"):
        build_series_model(parse_spec({"name": "cnn"}), 1, 10, 3, relative=False)
    # texts and series share the lstm spec; what only a text model has is refused here
    with pytest.raises(UserError, match="train.model.pooling applies to texts"):
        build_series_model(parse_spec({"name": "lstm", "pooling": "mean"}), 1, 10, 3, False)
    gru = build_series_model(parse_spec({"name": "gru"}), 1, 10, 3, relative=False)
    assert (gru.rnn.hidden_size, gru.dropout.p) == (64, 0.0)  # the series defaults
    # rebuilt from a model card, which stores every key of the spec, defaults included
    stored = parse_spec({"name": "lstm"}).model_dump(mode="json")
    assert build_series_model(parse_spec(stored), 1, 10, 3, relative=False).rnn.hidden_size == 64


def test_a_panel_trains_evaluates_exports_and_forecasts_per_series(tmp_path):
    """One model over three series of different levels: per-series scaling inside the ONNX
    graph agrees with PyTorch on every test window, and predict forecasts each series."""
    from torchstages.deploy.export import export_and_verify
    from torchstages.deploy.runtime import load_runner
    from torchstages.models.saved import load_model
    from torchstages.params.export import ExportParams
    from torchstages.series.evaluate import evaluate_series
    from torchstages.series.predict import predict_series
    from torchstages.training.loop import TrainOutputs, train

    panel = make_panel(3, 100)
    write_series(panel, tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path, split={"id": "id"})
    models = tmp_path / "models"
    outputs = TrainOutputs(
        models / "w.safetensors", models / "m.json", models / "c.pt", models / "l"
    )
    train(TrainParams.model_validate({"epochs": 3, "threads": 1}), processed, outputs)
    model, card = load_model(outputs.weights, outputs.card)
    metrics, arrays = evaluate_series(
        "test",
        model,
        card,
        processed,
        tmp_path / "splits",
        tmp_path / "plots",
        64,
        torch.device("cpu"),
    )
    assert metrics["series"] == 3 and arrays["forecast"].shape == (metrics["samples"], 4)
    # MASE divides by each series' one-season naive error over its train range only
    _, split = read_series_splits(tmp_path / "splits")
    ids = card["series_ids"]
    trains = [split.values[sid][: split.bounds[sid]["train"][1], 0] for sid in ids]
    index = np.load(processed / "test_index.npy")
    scale = mase_scales(trains, card["season"])[index[:, 0]]
    error = np.abs(arrays["forecast"] - arrays["actual"]) / scale[:, None]
    assert metrics["mase"] == pytest.approx(error.mean(), abs=1e-5)
    export = tmp_path / "export"
    metrics = export_and_verify(
        ExportParams(formats=["onnx"]),
        outputs.weights,
        outputs.card,
        processed,
        export,
        tmp_path / "export.json",
    )
    assert metrics["formats"]["onnx"]["prediction_agreement"] == 1.0
    history = write_series(panel[panel["time"].astype(int) < 90], tmp_path / "new")
    header, rows = predict_series(load_runner(export / "model.onnx"), history)
    assert header == ["series", "time", "step", "predicted_value"]
    assert [r[:3] for r in rows[:5]] == [
        ["s0", 90, 1],
        ["s0", 91, 2],
        ["s0", 92, 3],
        ["s0", 93, 4],
        ["s1", 90, 1],
    ]
    # each series' forecast sits at its own level (s2 is around 100 units above s1)
    level = {r[0]: r[3] for r in rows if r[2] == 1}
    assert level["s0"] < level["s1"] < level["s2"]
    unknown = write_series(panel.assign(id=panel["id"].replace("s1", "s9")), tmp_path / "odd")
    with pytest.raises(
        UserError, match=r"series 's9' was not in training \(known: 's0', 's1', 's2'\)$"
    ):
        predict_series(load_runner(export / "model.onnx"), unknown)


def test_log_transform_round_trips_and_is_inside_the_onnx_graph(tmp_path):
    import onnx

    from torchstages.deploy.export import export_and_verify
    from torchstages.deploy.runtime import load_runner
    from torchstages.models.saved import load_model
    from torchstages.params.export import ExportParams
    from torchstages.series.evaluate import unscale
    from torchstages.series.export import raw_windows
    from torchstages.series.predict import forecast_frame
    from torchstages.training.loop import TrainOutputs, train

    frame = make_series(120)
    frame["value"] = np.round(np.exp(frame["value"] / 10), 4)  # multiplicative, positive
    write_series(frame, tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path, transform="log")
    meta = json.loads((processed / "meta.json").read_text())
    assert meta["transform"] == "log"
    windows, targets = (np.load(processed / f"test_{k}.npy") for k in ("windows", "targets"))
    index = np.load(processed / "test_index.npy")
    raw = frame["value"].to_numpy()
    first = index[:, 1]
    # the stored arrays are the scaled logarithm; both ways back give the raw values
    expected = raw[first[:, None] + np.arange(4)]
    assert np.allclose(unscale(targets, index[:, 0], meta), expected, rtol=1e-5)
    history = raw[first[:, None] + np.arange(-12, 0)]
    assert np.allclose(raw_windows(windows, index[:, 0], meta)[..., 0], history, rtol=1e-5)
    models = tmp_path / "models"
    outputs = TrainOutputs(
        models / "w.safetensors", models / "m.json", models / "c.pt", models / "l"
    )
    train(TrainParams.model_validate({"epochs": 2, "threads": 1}), processed, outputs)
    metrics = export_and_verify(
        ExportParams(),
        outputs.weights,
        outputs.card,
        processed,
        tmp_path / "export",
        tmp_path / "export.json",
    )
    # the export takes raw values: every format's forecast of raw windows agrees with PyTorch's
    assert metrics["formats"]["onnx"]["prediction_agreement"] == 1.0
    assert metrics["formats"]["pt2"]["prediction_agreement"] == 1.0
    card_text = (tmp_path / "export" / "MODEL_CARD.md").read_text()
    assert "- transform: log" in card_text
    graph = onnx.load(str(tmp_path / "export" / "model.onnx"))
    ops = {node.op_type for node in graph.graph.node}
    assert {"Log", "Exp"} <= ops
    assert {p.key: p.value for p in graph.metadata_props}["transform"] == "log"
    _, card = load_model(outputs.weights, outputs.card)
    assert card["transform"] == "log"
    # predicting from a history: its raw values in, a history the log cannot take refused
    runner = load_runner(tmp_path / "export" / "model.onnx")
    history = frame.iloc[:60].astype({"time": str, "value": str})
    (forecast,) = forecast_frame(runner, history, "history.csv")
    assert all(v > 0 for v in forecast.values)
    history.loc[55, "value"] = "0"
    with pytest.raises(UserError, match=r"history.csv: the history has a value <= 0 \(0\) in"):
        forecast_frame(runner, history, "history.csv")


def test_log_transform_refuses_a_non_positive_value_naming_the_column(tmp_path):
    frame = make_series(120)
    frame.loc[100, "value"] = 0.0  # after the train range: every window input needs its log
    write_series(frame, tmp_path / "raw")
    with pytest.raises(UserError, match=r"transform log: the target column 'value' has a non-pos"):
        split_and_build(tmp_path / "raw", tmp_path, transform="log")
    # no transform: the same series builds
    split_and_build(tmp_path / "raw", tmp_path)


def test_covariates_are_scaled_inputs_never_targets(tmp_path):
    frame = make_series(120)
    frame["price"] = (frame["value"] * 3 + 50).round(3)
    write_series(frame, tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path, split={"covariates": ["price"]})
    meta = json.loads((processed / "meta.json").read_text())
    assert meta["features"] == ["value", "price"] and len(meta["scaler"]["shift"][0]) == 2
    windows = np.load(processed / "train_windows.npy")
    # standard scaling of a linear function of the target: the two channels coincide
    assert windows.shape[2] == 2 and np.allclose(windows[..., 0], windows[..., 1], atol=1e-4)
    assert np.load(processed / "train_targets.npy").shape[1] == 4


def test_the_export_says_how_to_compute_the_calendar_inputs():
    from torchstages.series.export import _calendar_doc

    assert _calendar_doc([]) == ""
    daily = _calendar_doc(["month_sin", "month_cos", "weekday_sin", "weekday_cos"])
    assert "month_sin/cos = sin/cos(2 pi (month - 1) / 12)" in daily
    assert "weekday_sin/cos = sin/cos(2 pi weekday / 7), Monday = 0" in daily


@pytest.mark.parametrize(("name", "sizes"), [("gru", {"hidden": 64, "dropout": 0.0}), ("mlp", {})])
def test_the_card_records_the_sizes_trained_and_only_the_keys_a_forecaster_reads(
    tmp_path, name, sizes
):
    from torchstages.models.saved import load_model
    from torchstages.training.loop import TrainOutputs, train

    write_series(make_series(120), tmp_path / "raw")
    processed = split_and_build(tmp_path / "raw", tmp_path)
    outputs = TrainOutputs(*(tmp_path / "m" / n for n in ("w.safetensors", "m.json", "c.pt", "l")))
    params = {"epochs": 1, "threads": 1, "model": {"name": name}}
    card = train(TrainParams.model_validate(params), processed, outputs)
    arch = card["architecture"]
    assert arch["name"] == name and sizes.items() <= arch.items()
    for other in ("pooling", "bidirectional", "embedding_dim", "ensemble", "linear_weight"):
        assert other not in arch, other  # text or table keys
    model, _ = load_model(outputs.weights, outputs.card)  # the card still builds the model
    assert sum(p.numel() for p in model.parameters()) == card["parameters"]


class _NaiveRunner:
    """What forecast_frame reads of an exported forecaster: its metadata, and a run that
    repeats the window's last value (the naive forecast)."""

    def __init__(self, freq: Frequency, lookback: int = 4, horizon: int = 2) -> None:
        self.horizon = horizon
        self.metadata = {
            "lookback": json.dumps(lookback),
            "horizon": json.dumps(horizon),
            "series_ids": json.dumps([""]),
            "time": "date",
            "target": "sales",
            "id": "",
            "covariates": "[]",
            "frequency": json.dumps(freq.to_dict()),
            "fill": "interpolate",
            "calendar": "[]",
            "transform": "none",
        }

    def run(self, feeds: dict) -> np.ndarray:
        return np.repeat(feeds["window"][:, -1, :1], self.horizon, axis=1)


def _history(times: list[str], values: list | None = None) -> pd.DataFrame:
    values = values or [str(float(v)) for v in range(len(times))]
    return pd.DataFrame({"date": times, "sales": values})


def test_forecasts_of_a_monthly_history_stay_on_its_day(tmp_path):
    from torchstages.series.predict import forecast_frame

    months = pd.date_range("2001-01-01", periods=24, freq="MS")
    on_15th = [t.replace(day=15).strftime("%Y-%m-%d") for t in months]
    (_,), freq, _ = read(pd.DataFrame({"date": on_15th, "sales": np.arange(24.0)}), tmp_path)
    runner = _NaiveRunner(freq)
    (forecast,) = forecast_frame(runner, _history(on_15th[-6:]), "history.csv")
    assert (forecast.times, forecast.values) == (["2003-01-15", "2003-02-15"], [5.0, 5.0])
    # a history on another day keeps its own (the model's day would re-date it silently)
    on_20th = [t.replace(day=20).strftime("%Y-%m-%d") for t in months[-6:]]
    (forecast,) = forecast_frame(runner, _history(on_20th), "history.csv")
    assert forecast.times == ["2003-01-20", "2003-02-20"]
    mixed = [*on_15th[-6:], "2003-01-20"]
    with pytest.raises(UserError, match=r"line 8: time '2003-01-20' is not on day 15 of its mon"):
        forecast_frame(runner, _history(mixed), "history.csv")
    # months written without a day: forecasts too
    (_,), freq, _ = read(
        pd.DataFrame({"date": months.strftime("%Y-%m"), "sales": np.arange(24.0)}), tmp_path
    )
    (forecast,) = forecast_frame(
        _NaiveRunner(freq), _history(list(months[-6:].strftime("%Y-%m"))), "history.csv"
    )
    assert forecast.times == ["2003-01", "2003-02"]


def test_a_history_half_filled_is_forecast_and_more_is_refused(tmp_path):
    from torchstages.series.predict import forecast_frame

    runner = _NaiveRunner(Frequency("int", 1), lookback=4)
    times = [str(t) for t in range(10)]
    half = _history(times, ["1", "2", "3", "4", "5", "6", None, "8", None, "10"])
    (forecast,) = forecast_frame(runner, half, "history.csv")  # 7 and 9 empty: 2 of 4
    assert forecast.times == [10, 11] and forecast.values == [10.0, 10.0]
    more = _history([t for t in times if t not in ("6", "7", "8")])
    with pytest.raises(UserError, match="3 of the last 4 time steps the model reads are missing"):
        forecast_frame(runner, more, "history.csv")
