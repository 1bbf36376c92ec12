"""`torchstages compare`: McNemar and the paired bootstrap on hand-made runs, the refusal when
splits differ, and two git revisions end to end through the command."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from torchstages.cli import main
from torchstages.errors import UserError
from torchstages.evaluation.compare import (
    compare_predictions,
    comparison_markdown,
    mcnemar_exact,
    paired_accuracy_interval,
)
from torchstages.evaluation.intervals import block_resample_batches
from torchstages.evaluation.predictions import Predictions, parse_predictions
from torchstages.io import write_csv

CLASSES = np.array(["cat", "dog", "fox"], dtype=object)


def _run(truth: np.ndarray, predicted: np.ndarray) -> Predictions:
    ids = [(f"{CLASSES[t]}/{i:04d}.png", f"{i:064x}") for i, t in enumerate(truth)]
    return Predictions("classification", ids, CLASSES[truth], CLASSES[predicted])


def _pair(n: int, fixed: int, broken: int, wrong_in_both: int, seed: int = 0):
    """Run A and run B on one split: B fixes ``fixed`` of A's mistakes and makes ``broken`` new."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    a, b = truth.copy(), truth.copy()
    slots = rng.permutation(n)
    for i in slots[:fixed]:
        a[i] = (truth[i] + 1) % 3
    for i in slots[fixed : fixed + broken]:
        b[i] = (truth[i] + 2) % 3
    for i in slots[fixed + broken : fixed + broken + wrong_in_both]:
        a[i] = b[i] = (truth[i] + 1) % 3
    return _run(truth, a), _run(truth, b)


@pytest.mark.parametrize("better, worse", [(0, 0), (1, 0), (5, 1), (3, 9), (30, 12), (400, 350)])
def test_mcnemar_exact_is_the_two_sided_binomial_test(better, worse):
    expected = 1.0 if better + worse == 0 else binomtest(better, better + worse, 0.5).pvalue
    assert mcnemar_exact(better, worse) == pytest.approx(expected, rel=1e-9)


def test_a_real_improvement_is_significant():
    a, b = _pair(1000, fixed=40, broken=12, wrong_in_both=30)
    result = compare_predictions(a, b)
    acc, f1 = result.statistics
    assert (result.better, result.worse) == (40, 12)
    assert acc.a == pytest.approx(1 - 70 / 1000) and acc.b == pytest.approx(1 - 42 / 1000)
    assert 0 < acc.ci_low < acc.b - acc.a < acc.ci_high
    assert 0 < f1.ci_low < f1.b - f1.a < f1.ci_high
    assert result.p_value < 0.001 and result.significant
    line = result.verdict("HEAD", "workspace", "test")
    assert line.startswith("workspace vs HEAD on test (1000 samples): accuracy 0.9300 -> 0.9580")
    assert "40 became right, 12 became wrong" in line and line.endswith(": significant at 5%")


def test_one_image_is_not_a_real_difference():
    """The issue's example: 0.9888 -> 0.9925 on 268 images is one image."""
    a, b = _pair(268, fixed=1, broken=0, wrong_in_both=2)
    result = compare_predictions(a, b)
    acc = result.statistics[0]
    assert (round(acc.a, 4), round(acc.b, 4)) == (0.9888, 0.9925)
    assert result.p_value == 1.0 and not result.significant
    assert acc.ci_low <= 0 <= acc.ci_high
    assert result.verdict("a", "b", "test").endswith("McNemar exact p = 1: not significant at 5%")


@pytest.mark.parametrize(
    "both, worse, better, neither",
    [(895, 0, 5, 100), (186, 82, 0, 2), (930, 12, 40, 18), (0, 3, 2, 0)],
)
def test_accuracy_interval_is_newcombes_square_and_add(both, worse, better, neither):
    """Method 10 of Newcombe (1998), rebuilt from independent parts: scipy's Wilson intervals of
    both accuracies and numpy's correlation of the two runs' right/wrong vectors."""
    right_a = np.repeat([1, 1, 0, 0], [both, worse, better, neither])
    right_b = np.repeat([1, 0, 1, 0], [both, worse, better, neither])
    n = len(right_a)
    acc_a, acc_b = right_a.mean(), right_b.mean()
    ci_a = binomtest(int(right_a.sum()), n).proportion_ci(method="wilson")
    ci_b = binomtest(int(right_b.sum()), n).proportion_ci(method="wilson")
    phi = np.corrcoef(right_a, right_b)[0, 1] if right_a.std() * right_b.std() else 0
    low = (
        acc_b
        - acc_a
        - np.sqrt(
            (acc_b - ci_b.low) ** 2
            - 2 * phi * (acc_b - ci_b.low) * (ci_a.high - acc_a)
            + (ci_a.high - acc_a) ** 2
        )
    )
    high = (
        acc_b
        - acc_a
        + np.sqrt(
            (ci_b.high - acc_b) ** 2
            - 2 * phi * (ci_b.high - acc_b) * (acc_a - ci_a.low)
            + (acc_a - ci_a.low) ** 2
        )
    )
    assert paired_accuracy_interval(both, worse, better, neither) == pytest.approx(
        (low, high), abs=1e-9
    )
    assert low <= acc_b - acc_a <= high


def test_few_changed_samples_give_no_interval_that_contradicts_the_test():
    """5 became right and none wrong, of 1,000: McNemar's p is 0.0625. The bootstrap interval of
    the accuracy difference excluded 0 there (+0.0010 to +0.0090) beside "not significant";
    Newcombe's includes it."""
    a, b = _pair(1000, fixed=5, broken=0, wrong_in_both=95)
    result = compare_predictions(a, b)
    acc = result.statistics[0]
    assert result.p_value == 0.0625 and not result.significant
    assert acc.ci_low < 0 < acc.ci_high


def test_macro_f1_is_the_one_metrics_json_holds():
    """compare's macro F1 of a run is the f1_macro its metrics file holds, when a class is in
    neither the split nor either run's predictions."""
    import torch

    from torchstages.evaluation.metrics import classification_metrics

    a, b = _pair(200, fixed=20, broken=6, wrong_in_both=10, seed=4)
    result = compare_predictions(a, b)
    code = {name: k for k, name in enumerate(CLASSES)}
    for run, value in ((a, result.statistics[1].a), (b, result.statistics[1].b)):
        truth = np.array([code[x] for x in run.truth])
        predicted = torch.tensor([code[x] for x in run.predicted])
        logits = torch.nn.functional.one_hot(predicted, 4).double()  # "owl": in no run, no label
        f1 = classification_metrics(logits, truth, [*CLASSES, "owl"], resamples=0)["f1_macro"]
        assert value == pytest.approx(f1, abs=1e-6)


def test_samples_are_paired_by_id_not_by_row_order():
    a, b = _pair(300, fixed=20, broken=3, wrong_in_both=5)
    order = np.random.default_rng(1).permutation(300)
    shuffled = Predictions(b.task, [b.ids[i] for i in order], b.truth[order], b.predicted[order])
    assert compare_predictions(a, shuffled) == compare_predictions(a, b)


def test_runs_on_different_splits_are_refused():
    a, b = _pair(50, fixed=2, broken=1, wrong_in_both=0)
    other_file = Predictions(b.task, [("cat/new.png", "0" * 64), *b.ids[1:]], b.truth, b.predicted)
    with pytest.raises(UserError, match="different splits: 1 samples only in the first, 1 only"):
        compare_predictions(a, other_file)
    changed_bytes = Predictions(b.task, [(b.ids[0][0], "f" * 64), *b.ids[1:]], b.truth, b.predicted)
    with pytest.raises(UserError, match="different splits"):
        compare_predictions(a, changed_bytes)
    relabelled = b.truth.copy()
    relabelled[:3] = "zebra"
    with pytest.raises(UserError, match="3 samples have another label"):
        compare_predictions(a, Predictions(b.task, b.ids, relabelled, b.predicted))
    with pytest.raises(UserError, match="different splits: 1 samples only in the first, 0 only"):
        compare_predictions(a, Predictions(b.task, b.ids[:-1], b.truth[:-1], b.predicted[:-1]))


def test_regression_compares_rmse_and_mae():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=400)
    ids = [(f"row{i}", f"{i:064x}") for i in range(400)]
    a = Predictions("regression", ids, truth, truth + rng.normal(scale=1.0, size=400))
    b = Predictions("regression", ids, truth, truth + rng.normal(scale=0.7, size=400))
    result = compare_predictions(a, b)
    rmse, mae = result.statistics
    assert rmse.name == "RMSE" and mae.name == "MAE" and result.p_value is None
    assert rmse.a == pytest.approx(np.sqrt(np.mean((a.predicted - truth) ** 2)))
    assert rmse.ci_high < 0 and mae.ci_high < 0 and result.significant
    assert result.better + result.worse == 400 and result.better > result.worse
    assert "the RMSE interval excludes 0: significant" in result.verdict("a", "b", "test")
    same_quality = Predictions("regression", ids, truth, truth + rng.normal(scale=1.0, size=400))
    assert not compare_predictions(a, same_quality).significant


def _forecast_csv(truth: np.ndarray, predicted: np.ndarray) -> str:
    """A series evaluation's predictions file: one row per window and horizon step."""
    lines = ["series,origin,time,step,actual,predicted"]
    for w, (actual, forecast) in enumerate(zip(truth, predicted, strict=True)):
        for h, (y, f) in enumerate(zip(actual, forecast, strict=True)):
            lines.append(f"value,{w},{w + h + 1},{h + 1},{y},{f}")
    return "\n".join(lines) + "\n"


def test_forecasts_are_compared_window_by_window():
    rng = np.random.default_rng(0)
    n, horizon = 300, 4
    series = np.sin(np.arange(n + horizon) / 5)
    truth = np.stack([series[w + 1 : w + 1 + horizon] for w in range(n)])
    a = parse_predictions(_forecast_csv(truth, truth + rng.normal(size=truth.shape)), "a.csv")
    b = parse_predictions(_forecast_csv(truth, truth + 0.6 * rng.normal(size=truth.shape)), "b")
    assert a.task == "forecast" and a.truth.shape == (n, horizon) and a.ids[1] == ("value", "1")
    result = compare_predictions(a, b)
    mae, rmse = result.statistics
    assert (mae.name, rmse.name) == ("MAE", "RMSE")
    assert mae.a == pytest.approx(np.abs(a.predicted - truth).mean())
    assert mae.ci_high < 0 and rmse.ci_high < 0 and result.significant
    assert result.better + result.worse == n and "windows got closer" in result.verdict(
        "a", "b", "t"
    )
    same = parse_predictions(_forecast_csv(truth, truth + rng.normal(size=truth.shape)), "c")
    assert not compare_predictions(a, same).significant


def test_block_bootstrap_widens_intervals_for_correlated_windows():
    """Errors shared by neighbouring windows (as overlapping forecast targets share them): i.i.d.
    resampling would claim a precision the split does not have."""
    rng = np.random.default_rng(1)
    n, horizon = 400, 12
    truth = np.zeros((n, horizon))
    drift = np.repeat(rng.normal(size=n // horizon + 1), horizon)[:n, None]  # runs of 12
    a = Predictions("forecast", [("s", str(w)) for w in range(n)], truth, truth + 1.0)
    b = Predictions("forecast", a.ids, truth, truth + 1.0 + 0.3 * drift)
    blocked = compare_predictions(a, b).statistics[0]
    # the same per-window errors as one-step forecasts: resampled one window at a time
    a1, b1 = (Predictions("forecast", a.ids, truth[:, :1], r.predicted[:, :1]) for r in (a, b))
    iid = compare_predictions(a1, b1).statistics[0]
    assert (blocked.a, blocked.b) == pytest.approx((iid.a, iid.b))
    assert blocked.ci_high - blocked.ci_low > 1.5 * (iid.ci_high - iid.ci_low)
    draws = next(block_resample_batches(10, 3, 5, seed=0))
    assert draws.shape == (5, 10)
    runs = draws.reshape(5, -1)[:, :9].reshape(5, 3, 3)
    assert (np.diff(runs, axis=2) % 10 == 1).all()  # consecutive indices, wrapping around


def test_block_runs_stay_within_the_series_of_a_panel():
    """The windows of two series are not neighbours: a run that wrapped from the end of one
    into the start of the next would resample errors as correlated that are not."""
    groups = np.array([0] * 7 + [1] * 13)
    for draws in block_resample_batches(20, 4, 300, seed=0, groups=groups):
        runs = draws[:, :20].reshape(len(draws), 5, 4)
        assert (groups[runs] == groups[runs[:, :, :1]]).all()
        # within its series, a run is consecutive windows, wrapping around that series only
        step = np.diff(runs, axis=2)
        assert np.isin(step, [1, -6, -12]).all() and (step != 1).any()
    # a single series draws exactly as before
    one = next(block_resample_batches(20, 4, 50, seed=3, groups=np.zeros(20, dtype=int)))
    np.testing.assert_array_equal(one, next(block_resample_batches(20, 4, 50, seed=3)))


def test_predictions_file_is_checked():
    with pytest.raises(UserError, match="x.csv: expected header id,sha256,label,predicted,p_label"):
        parse_predictions("file,label\na,b\n", "x.csv")
    with pytest.raises(UserError, match="x.csv: every row needs 4 fields"):
        parse_predictions("id,sha256,target,predicted\na,b,1.0\n", "x.csv")
    header = "series,origin,time,step,actual,predicted\n"
    with pytest.raises(UserError, match="x.csv: every window needs steps 1..2 in order"):
        parse_predictions(header + "s,0,1,1,1,1\ns,0,2,2,1,1\ns,1,2,1,1,1\n", "x.csv")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _write(repo: Path, run: Predictions) -> None:
    write_csv(
        repo / "predictions/test.csv",
        ["id", "sha256", "label", "predicted", "p_label"],
        [[i, s, t, p, 0.5] for (i, s), t, p in zip(run.ids, run.truth, run.predicted, strict=True)],
    )


def test_compare_command_reads_git_revisions_and_the_workspace(tmp_path, monkeypatch, capsys):
    a, b = _pair(500, fixed=25, broken=5, wrong_in_both=10)
    _git(tmp_path, "init", "-q")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "readme").write_text("no predictions yet\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    _write(tmp_path, a)
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run a")
    _write(tmp_path, b)  # the workspace holds run b

    assert main(["compare"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("workspace vs HEAD on test (500 samples): accuracy 0.9300 -> 0.9700")
    assert out[0].endswith(": significant at 5%")
    assert out[1].startswith("| metric | HEAD | workspace |") and out[3].startswith("| accuracy |")
    assert main(["compare", "HEAD", "HEAD"]) == 0
    assert "0 became right, 0 became wrong; McNemar exact p = 1" in capsys.readouterr().out

    assert main(["compare", "HEAD~1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: HEAD~1:predictions/test.csv: cannot read it (")
    section = comparison_markdown("HEAD~1")
    assert section.startswith("## Is it really better? (`test`, workspace against `HEAD~1`)")
    assert "Not compared: HEAD~1:predictions/test.csv: cannot read it" in section
    assert "workspace vs HEAD on test" in comparison_markdown("HEAD")


def test_a_committed_run_is_read_as_utf8_whatever_the_locale(tmp_path):
    """git's output was decoded in the locale's encoding: ASCII under LC_ALL=C without
    Python's UTF-8 mode, where a class named "négatif" stopped compare with a traceback."""
    import os
    import sys

    _git(tmp_path, "init", "-q")
    write_csv(
        tmp_path / "predictions/test.csv",
        ["id", "sha256", "label", "predicted", "p_label"],
        [["a.png", "x", "négatif", "négatif", 0.9], ["b.png", "y", "positif", "négatif", 0.6]],
    )
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run")
    code = (
        "from pathlib import Path; from torchstages.evaluation.compare import load_predictions; "
        "print(sorted(set(load_predictions('HEAD', Path('predictions/test.csv')).truth)))"
    )
    ascii_locale = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, **ascii_locale, "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        encoding="utf-8",
    )
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.strip() == "['négatif', 'positif']"
