"""The metrics agree with scikit-learn (and ECE with its definition) on hand-made predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from torchstages.evaluation.metrics import classification_metrics, expected_calibration_error
from torchstages.evaluation.plot_data import curve_rows, mistake_order


def _case(n_classes: int, n: int = 60, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Logits that are right about two thirds of the time, with every class present."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), labels] += rng.choice([0.0, 2.5], size=n, p=[0.3, 0.7])
    return torch.tensor(logits, dtype=torch.float32), labels


def _probs(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), 1).numpy()


def test_multiclass_metrics_match_sklearn():
    logits, y = _case(6)
    classes = [f"c{k}" for k in range(6)]
    m = classification_metrics(logits, y, classes, top_k=3, calibration_bins=10)
    probs = _probs(logits)
    pred = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-6)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred), abs=1e-6)
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-6)
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"), abs=1e-6)
    assert m["loss"] == pytest.approx(skm.log_loss(y, probs), abs=1e-6)
    assert m["top3_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=3), abs=1e-6)
    assert 0 < m["top3_accuracy"] <= 1 and m["top3_accuracy"] > m["accuracy"]
    assert m["samples"] == 60
    assert "roc_auc" not in m and "average_precision" not in m
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=range(6), zero_division=0)
    for k, name in enumerate(classes):
        got = m["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(
            (p[k], r[k], f[k]), abs=1e-6
        )
        assert got["support"] == s[k]


def test_two_classes_add_roc_auc_and_average_precision_and_skip_top_k():
    logits, y = _case(2, n=40, seed=1)
    m = classification_metrics(logits, y, ["cat", "dog"], top_k=5)
    probs = _probs(logits)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs[:, 1]), abs=1e-6)
    assert m["average_precision"] == pytest.approx(
        skm.average_precision_score(y, probs[:, 1]), abs=1e-6
    )
    assert not any(k.startswith("top") for k in m), "top-5 of 2 classes is always 1: skipped"


def test_top_k_is_skipped_when_classes_equal_k():
    logits, y = _case(5)
    assert "top5_accuracy" not in classification_metrics(logits, y, list("abcde"), top_k=5)
    assert "top4_accuracy" in classification_metrics(logits, y, list("abcde"), top_k=4)


def test_headline_keys_stay_at_top_level_and_per_class_is_nested():
    logits, y = _case(3)
    m = classification_metrics(logits, y, ["a", "b", "c"])
    headline = {"accuracy", "balanced_accuracy", "ece", "f1_macro", "f1_weighted", "loss"}
    bounds = {f"{k}_ci_{end}" for k in headline for end in ("low", "high")}
    assert set(m) == headline | bounds | {"per_class", "samples"}
    assert set(m["per_class"]) == {"a", "b", "c"}
    for name in "abc":
        assert set(m["per_class"][name]) == {
            "precision", "recall", "f1", "support", *(
                f"{k}_ci_{end}" for k in ("precision", "recall", "f1") for end in ("low", "high")
            ),
        }  # fmt: skip
    without = classification_metrics(logits, y, ["a", "b", "c"], resamples=0)
    assert set(without) == headline | {"per_class", "samples"}


def test_expected_calibration_error_by_hand():
    # confidences 0.9, 0.9 (one right), 0.6 (right), 0.3 (wrong; a 4-class row) in 2 bins:
    # bin (0.5, 1]: 3 samples, accuracy 2/3, mean confidence 0.8; bin (0, 0.5]: 1 sample, 0 vs 0.3
    probs = np.array([[0.9, 0.1, 0, 0], [0.1, 0.9, 0, 0], [0.6, 0.4, 0, 0], [0.3, 0.25, 0.25, 0.2]])
    labels = np.array([0, 0, 0, 1])
    expected = 3 / 4 * abs(2 / 3 - 0.8) + 1 / 4 * abs(0 - 0.3)
    assert expected_calibration_error(probs, labels, 2) == pytest.approx(expected)
    # perfectly calibrated: confidence 1 and always right
    assert expected_calibration_error(np.eye(3), np.arange(3), 10) == 0
    # a confidence on a bin edge belongs to the bin it closes: 0.5 of 2 bins is in (0, 0.5]
    probs = np.array([[0.5, 0.5], [0.9, 0.1]])
    expected = 1 / 2 * abs(1 - 0.5) + 1 / 2 * abs(1 - 0.9)  # each alone: edges kept apart
    assert expected_calibration_error(probs, np.array([0, 0]), 2) == pytest.approx(expected)


def test_curves_two_classes_match_sklearn_and_multiclass_is_micro_averaged():
    logits, y = _case(2, n=40, seed=2)
    probs = _probs(logits)
    roc, pr = curve_rows(probs, y)
    fpr, tpr, _ = skm.roc_curve(y, probs[:, 1])
    assert roc == [[round(a, 6), round(b, 6)] for a, b in zip(fpr, tpr, strict=True)]
    assert pr[0][0] == 0 and pr[-1][0] == 1, "recall runs left to right"
    assert np.trapezoid([t for _, t in roc], [f for f, _ in roc]) == pytest.approx(
        skm.roc_auc_score(y, probs[:, 1]), abs=1e-5
    )
    logits, y = _case(4)
    roc, _ = curve_rows(_probs(logits), y)
    micro = skm.roc_auc_score(np.eye(4)[y], _probs(logits), average="micro")
    assert np.trapezoid([t for _, t in roc], [f for f, _ in roc]) == pytest.approx(micro, abs=1e-5)


def test_mistakes_come_most_confident_first():
    probs = np.array([[0.6, 0.4], [0.1, 0.9], [0.2, 0.8], [0.95, 0.05]])
    labels = np.array([1, 0, 1, 1])
    assert mistake_order(probs, labels).tolist() == [3, 1, 0]


def test_the_baseline_answers_the_train_splits_most_frequent_class(tmp_path):
    """Not the evaluated split's own (which would peek at its labels): here they differ."""
    import torch

    from torchstages.data.discover import Row
    from torchstages.evaluation.classification import classify_rows
    from torchstages.params.evaluate import EvaluateParams

    processed = tmp_path / "processed"
    processed.mkdir()
    np.save(processed / "train_labels.npy", np.array([1, 1, 1, 0], dtype=np.int64))
    labels = np.array([0, 0, 1], dtype=np.int64)  # this split's most frequent class is 0
    rows = [Row(f"{i}.png", "ab"[int(y)], "h") for i, y in enumerate(labels)]
    params = EvaluateParams(bootstrap_resamples=0)
    metrics, _ = classify_rows(
        torch.zeros(3, 2), labels, ["a", "b"], params, rows, processed, tmp_path / "plots", None
    )
    assert metrics["baseline_accuracy"] == pytest.approx(1 / 3, abs=1e-6)
