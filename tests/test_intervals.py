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
    assert np.allclose(scores["precision"], p) and np.allclose(scores["recall"], r)
    assert np.allclose(scores["f1"], f)


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
