"""Confidence intervals: Wilson by hand, the bootstrap's statistics agree with scikit-learn, the
bounds are seeded and byte-stable, and they cover the true value about 95% of the time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from torchstages.evaluation import intervals
from torchstages.evaluation.intervals import (
    classification_intervals,
    confusion_stack,
    resample_batches,
    scores_from_confusion,
    wilson_interval,
)
from torchstages.evaluation.metrics import classification_metrics
from torchstages.io import stable_json


def _predictions(n: int, n_classes: int, accuracy: float, seed: int):
    """Labels, and probabilities whose argmax is right with probability ``accuracy``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    right = rng.random(n) < accuracy
    wrong = (labels + rng.integers(1, n_classes, n)) % n_classes
    logits[np.arange(n), np.where(right, labels, wrong)] += 5.0
    return torch.tensor(logits), labels


def test_wilson_matches_the_closed_form():
    # 0 of 10: the upper bound is z^2 / (n + z^2); a normal interval would be [0, 0]
    low, high = wilson_interval(0, 10)
    assert low == 0 and high == pytest.approx(1.959964**2 / (10 + 1.959964**2), abs=1e-6)
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1) and low == pytest.approx(10 / (10 + 1.959964**2), abs=1e-6)
    # 265 of 268 (the demo's test split): asymmetric around the estimate, inside [0, 1]
    low, high = wilson_interval(265, 268)
    assert 0.967 < low < 265 / 268 < high < 0.997
    assert (265 / 268 - low) > (high - 265 / 268)


def test_statistics_from_confusion_match_sklearn_with_a_class_missing():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 50)
    y[y == 3] = 0  # class 3 absent from the truth but predicted sometimes
    pred = rng.integers(0, 4, 50)
    (scores,) = [
        {k: v[0] for k, v in scores_from_confusion(confusion_stack(y, pred, 4, np.arange(50)[None])).items()}
    ]  # fmt: skip
    labels = [0, 1, 2, 3]
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert scores["f1_macro"] == pytest.approx(
        skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)
    )
    assert scores["f1_weighted"] == pytest.approx(
        skm.f1_score(y, pred, labels=labels, average="weighted", zero_division=0)
    )
    assert scores["balanced_accuracy"] == pytest.approx(
        skm.recall_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    )
    p, r, f, _ = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    assert np.allclose(scores["precision"], p) and np.allclose(scores["f1"], f)
    # the recall of a class with no true sample is undefined: NaN, so an interval skips it
    assert np.allclose(scores["recall"][:3], r[:3]) and np.isnan(scores["recall"][3])


def test_a_class_a_resample_leaves_out_is_skipped_not_scored_zero():
    """A perfect classifier with one sample of a rare class: a resample without that sample
    says nothing about the class, so every interval is 1 to 1 (it used to score the missing
    class 0 and put the macro F1 at 0.67 to 1, the class's own scores at 0 to 1)."""
    y = np.array([0] * 15 + [1] * 14 + [2])
    logits = torch.nn.functional.one_hot(torch.tensor(y), 3).double() * 5
    m = classification_metrics(logits, y, ["a", "b", "c"], resamples=1000)
    for key in ("f1_macro", "f1_weighted", "balanced_accuracy"):
        assert (m[f"{key}_ci_low"], m[key], m[f"{key}_ci_high"]) == (1.0, 1.0, 1.0), key
    for key in ("precision", "recall", "f1"):
        bounds = m["per_class"]["c"]
        assert (bounds[f"{key}_ci_low"], bounds[key], bounds[f"{key}_ci_high"]) == (1, 1, 1), key


def test_macro_f1_leaves_out_a_class_absent_from_labels_and_predictions():
    """scikit-learn's rule: a class in the card that neither the split nor the model names has
    no F1; averaging it in as 0 made metrics/*.json disagree with `torchstages compare`."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 40)
    logits = torch.tensor(rng.normal(size=(40, 4)))
    logits[:, 3] = -10.0  # class 3: never predicted, never true
    m = classification_metrics(logits, y, list("abcd"), resamples=200)
    pred = logits.argmax(1).numpy()
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-6)
    assert "f1_ci_low" not in m["per_class"]["d"] and m["per_class"]["d"]["support"] == 0


def test_top_k_interval_and_score_count_the_same_hits_with_ties():
    """Tied probabilities (an untrained network, underflowed logits) rank in class order, as
    predict lists them; the score and its interval count the same hits (the interval used to
    count every tie as a hit: 0.84 to 1 around a score of 0.30)."""
    from torchstages.deploy.runtime import top_k

    y = np.arange(20) % 6
    m = classification_metrics(torch.zeros(20, 6), y, list("abcdef"), top_k=2)
    assert m["top2_accuracy"] == pytest.approx(8 / 20)  # classes a and b, listed first
    assert m["top2_accuracy_ci_low"] <= m["top2_accuracy"] <= m["top2_accuracy_ci_high"] < 0.7
    probs = np.full(6, 1 / 6)
    assert [c for c, _ in top_k(probs, list("abcdef"), 2)] == ["a", "b"]
    rng = np.random.default_rng(0)
    for _ in range(50):  # no ties: scikit-learn's score
        logits, labels = torch.tensor(rng.normal(size=(30, 7))), rng.integers(0, 7, 30)
        score = classification_metrics(logits, labels, list("abcdefg"), top_k=3, resamples=0)
        expected = skm.top_k_accuracy_score(labels, logits.numpy(), k=3, labels=range(7))
        assert score["top3_accuracy"] == pytest.approx(expected, abs=1e-6)


def test_baseline_accuracy_answers_the_given_class():
    y = np.array([0, 0, 1, 2, 2, 2])
    m = classification_metrics(torch.zeros(6, 3), y, list("abc"), majority=2, resamples=0)
    assert m["baseline_accuracy"] == 0.5
    assert "baseline_accuracy" not in classification_metrics(torch.zeros(6, 3), y, list("abc"))


def test_resamples_do_not_depend_on_the_batch_size(monkeypatch):
    whole = np.concatenate(list(resample_batches(37, 50, seed=3)))
    monkeypatch.setattr(intervals, "_DRAWS_PER_BATCH", 37 * 7)  # 7 resamples per batch
    batches = list(resample_batches(37, 50, seed=3))
    assert len(batches) == 8 and np.array_equal(np.concatenate(batches), whole)
    assert not np.array_equal(np.concatenate(list(resample_batches(37, 50, seed=4))), whole)


def test_every_interval_holds_its_metric_and_is_byte_stable():
    logits, y = _predictions(120, 6, 0.8, seed=0)
    classes = list("abcdef")
    first = classification_metrics(logits, y, classes, top_k=3, calibration_bins=10)
    again = classification_metrics(logits, y, classes, top_k=3, calibration_bins=10)
    assert stable_json(first) == stable_json(again)
    other_seed = classification_metrics(logits, y, classes, top_k=3, calibration_bins=10, seed=1)
    assert other_seed["f1_macro_ci_low"] != first["f1_macro_ci_low"]
    assert other_seed["accuracy_ci_low"] == first["accuracy_ci_low"], "Wilson: no resampling"
    for key in (
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "f1_weighted",
        "loss",
        "top3_accuracy",
    ):
        assert first[f"{key}_ci_low"] <= first[key] <= first[f"{key}_ci_high"], key
        assert first[f"{key}_ci_low"] < first[f"{key}_ci_high"], key
    assert first["ece_ci_low"] < first["ece_ci_high"]
    for name in classes:
        m = first["per_class"][name]
        for key in ("precision", "recall", "f1"):
            assert m[f"{key}_ci_low"] <= m[key] <= m[f"{key}_ci_high"], (name, key)


def test_two_class_ranking_metrics_get_intervals():
    logits, y = _predictions(80, 2, 0.85, seed=2)
    m = classification_metrics(logits, y, ["neg", "pos"], resamples=200)
    for key in ("roc_auc", "average_precision"):
        assert m[f"{key}_ci_low"] <= m[key] <= m[f"{key}_ci_high"] <= 1.0


def test_intervals_cover_the_true_value_about_95_percent_of_the_time():
    """100 test splits of 300 samples from a classifier that is right 80% of the time, on 5
    balanced classes: its balanced accuracy is 0.8, and so is its accuracy."""
    covered = {"accuracy": 0, "balanced_accuracy": 0}
    width = []
    for seed in range(100):
        logits, y = _predictions(300, 5, 0.8, seed=seed)
        probs = torch.softmax(logits, 1).numpy()
        bounds = classification_intervals(probs, y, list("abcde"), 5, 10, resamples=300, seed=0)
        for key in covered:
            covered[key] += bounds[f"{key}_ci_low"] <= 0.8 <= bounds[f"{key}_ci_high"]
        width.append(bounds["accuracy_ci_high"] - bounds["accuracy_ci_low"])
    assert 88 <= covered["accuracy"] <= 100 and 85 <= covered["balanced_accuracy"] <= 100
    # 1.96 * sqrt(0.8 * 0.2 / 300) on each side
    assert np.mean(width) == pytest.approx(2 * 1.96 * np.sqrt(0.16 / 300), rel=0.05)


def test_vectorised_ranking_scores_equal_scikit_learn_with_ties():
    import warnings

    from sklearn.metrics import average_precision_score, roc_auc_score

    from torchstages.evaluation.intervals import _ranking_scores

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    for digits in (1, 6):  # many ties, then almost none
        score = np.round(rng.random(200), digits)
        idx = rng.integers(0, 200, (40, 200))
        idx[0] = np.flatnonzero(y)[0]  # one resample with a single class: NaN, as documented
        got = _ranking_scores(y, score, idx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            auc = [roc_auc_score(y[r], score[r]) for r in idx[1:]]
            ap = [average_precision_score(y[r], score[r]) for r in idx[1:]]
        assert np.isnan(got["roc_auc"][0]) and np.isnan(got["average_precision"][0])
        np.testing.assert_allclose(got["roc_auc"][1:], auc, atol=1e-12)
        np.testing.assert_allclose(got["average_precision"][1:], ap, atol=1e-12)


def test_r2_of_one_repeated_target_follows_scikit_learn_and_its_resamples_are_skipped():
    """A resample whose targets are all equal defines no R² (0/0): it is skipped. It used to
    count as R² 1, putting the top of a poor model's interval at 1 on a zero-inflated target."""
    from sklearn.metrics import r2_score

    from torchstages.evaluation.intervals import regression_intervals
    from torchstages.tables.evaluate import regression_metrics

    actual = np.array([0.0] * 27 + [3.0, 5.0, 9.0])
    predicted = actual + np.random.default_rng(0).normal(0, 1.2, 30)
    point = regression_metrics(predicted, actual, 1.0, 2.0)
    assert point["r2"] == pytest.approx(r2_score(actual, predicted), abs=1e-6)
    bounds = regression_intervals(predicted, actual, 2.0, 1000, 0)
    assert bounds["r2_ci_low"] <= point["r2"] <= bounds["r2_ci_high"] < 0.99
    for a, p in (([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]), ([1.0, 1.0, 1.0], [3.0, 1.0, 1.0])):
        a, p = np.array(a), np.array(p)
        assert regression_metrics(p, a, 1.0, 1.0)["r2"] == r2_score(a, p)


def test_regression_metrics_match_scikit_learn_and_the_baseline_uses_the_train_mean():
    from sklearn.metrics import (
        mean_absolute_error,
        mean_absolute_percentage_error,
        mean_squared_error,
        r2_score,
    )

    from torchstages.tables.evaluate import regression_metrics

    rng = np.random.default_rng(1)
    actual = rng.uniform(1, 10, 50)
    predicted = actual + rng.normal(0.5, 1.5, 50)
    train_mean, std = 4.0, 2.5  # not the test mean: the baseline knows only the train rows
    got = regression_metrics(predicted, actual, train_mean, std)
    assert got["mae"] == pytest.approx(mean_absolute_error(actual, predicted), abs=1e-6)
    assert got["rmse"] == pytest.approx(mean_squared_error(actual, predicted) ** 0.5, abs=1e-6)
    assert got["mape"] == pytest.approx(mean_absolute_percentage_error(actual, predicted), abs=1e-6)
    assert got["r2"] == pytest.approx(r2_score(actual, predicted), abs=1e-6)
    baseline = mean_squared_error(actual, np.full(50, train_mean)) ** 0.5
    assert got["baseline_rmse"] == pytest.approx(baseline, abs=1e-6)
    assert got["loss"] == pytest.approx(mean_squared_error(actual, predicted) / std**2, abs=1e-6)
    actual[3] = 0.0  # a percentage of zero is undefined: no MAPE rather than infinity
    assert "mape" not in regression_metrics(predicted, actual, train_mean, std)
