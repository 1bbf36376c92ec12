"""95% confidence intervals of the evaluation metrics: Wilson for proportions, a seeded bootstrap
over the split's samples for everything else.

The bootstrap draws its resamples from ``numpy.random.PCG64(seed)`` and computes every statistic
from integer counts (a confusion matrix per resample), so the same predictions and seed give the
same bounds, and the files that hold them the same bytes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from torchstages.io import six_decimals

__all__ = [
    "regression_intervals",
    "LEVEL",
    "classification_intervals",
    "confusion_stack",
    "percentile_interval",
    "resample_batches",
    "block_resample_batches",
    "scores_from_confusion",
    "top_k_hits",
    "wilson_interval",
]

LEVEL = 0.95
_Z = 1.959963984540054  # standard normal quantile at 0.975: a two-sided 95% interval
# index draws held in memory at once (int64): ~16 MB whatever the split size
_DRAWS_PER_BATCH = 2_000_000


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """Wilson score interval of a proportion: stays inside [0, 1] and is sensible at 0 or n
    successes, where the normal approximation collapses to a zero-width interval."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + _Z**2 / (2 * n)) / (1 + _Z**2 / n)
    half = _Z * math.sqrt(p * (1 - p) / n + _Z**2 / (4 * n * n)) / (1 + _Z**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def resample_batches(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """(batch, n) arrays of sample indices drawn with replacement, ``resamples`` rows in all.

    The draws depend only on ``n``, ``resamples`` and ``seed`` (not on the batch size), so two
    runs compared on one split see the same resamples.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    per_batch = max(1, _DRAWS_PER_BATCH // max(n, 1))
    for start in range(0, resamples, per_batch):
        yield rng.integers(0, n, (min(per_batch, resamples - start), n))


def block_resample_batches(
    n: int, block: int, resamples: int, seed: int, groups: np.ndarray | None = None
) -> Iterator[np.ndarray]:
    """Like :func:`resample_batches`, but drawing runs of ``block`` consecutive indices
    (circular block bootstrap, Politis & Romano 1992): for samples that are correlated with their
    neighbours, such as overlapping forecast windows, i.i.d. draws would make intervals too
    narrow. ``block`` 1 draws as :func:`resample_batches` does.

    ``groups`` (one label per sample, e.g. the series of each window of a panel): a run wraps
    around within the group of its first sample, so it never joins the end of one series to
    the start of the next, whose errors are not correlated that way."""
    block = max(1, min(block, n))
    starts_per_draw = -(-n // block)
    offsets = np.arange(block)
    # positions grouped (stable: in their order within each group); for each position the
    # first position of its group, its rank there and the group's size
    groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    grouped = groups[order]
    first = np.searchsorted(grouped, grouped, "left")
    size = np.searchsorted(grouped, grouped, "right") - first
    rank = np.arange(n) - first
    rng = np.random.Generator(np.random.PCG64(seed))
    per_batch = max(1, _DRAWS_PER_BATCH // max(n, 1))
    for start in range(0, resamples, per_batch):
        starts = rng.integers(0, n, (min(per_batch, resamples - start), starts_per_draw))
        within = (rank[starts][:, :, None] + offsets) % size[starts][:, :, None]
        runs = order[first[starts][:, :, None] + within]
        yield runs.reshape(len(starts), -1)[:, :n]


def percentile_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5th and 97.5th percentiles over the first axis (resamples), NaN rows skipped; NaN
    where every resample is NaN (a score no resample defines)."""
    tail = 100 * (1 - LEVEL) / 2
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        low, high = np.nanpercentile(values, [tail, 100 - tail], axis=0)
    return low, high


def confusion_stack(
    truth: np.ndarray, predicted: np.ndarray, n: int, idx: np.ndarray
) -> np.ndarray:
    """(batch, n, n) confusion matrices [true, predicted] of the resamples ``idx`` (batch, samples)."""
    codes = (truth.astype(np.int64) * n + predicted)[idx]
    codes += np.arange(len(idx))[:, None] * (n * n)
    return np.bincount(codes.ravel(), minlength=len(idx) * n * n).reshape(len(idx), n, n)


def scores_from_confusion(conf: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy, macro and weighted F1 (batch,) and per-class precision, recall
    and F1 (batch, classes) of confusion matrices (batch, n, n), as scikit-learn scores each
    matrix: balanced accuracy averages the classes in the truth, macro F1 those in the truth or
    the predictions (a class in both with no hit scores 0). A per-class score whose denominator
    is 0 in a matrix (recall of a class a resample left out, precision of a class it never
    predicted) is NaN there, so that the intervals skip it instead of counting it as 0."""
    tp = np.diagonal(conf, axis1=1, axis2=2).astype(np.float64)
    support = conf.sum(2).astype(np.float64)
    predicted = conf.sum(1).astype(np.float64)
    total = support.sum(1)
    present = support > 0
    seen = present | (predicted > 0)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * tp, support + predicted)
    return {
        "accuracy": tp.sum(1) / total,
        "balanced_accuracy": (recall * present).sum(1) / present.sum(1),
        "f1_macro": (f1 * seen).sum(1) / seen.sum(1),
        "f1_weighted": (f1 * support).sum(1) / total,
        "precision": np.where(predicted > 0, _ratio(tp, predicted), np.nan),
        "recall": np.where(present, recall, np.nan),
        "f1": np.where(seen, f1, np.nan),
    }


def top_k_hits(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: the true class is among the ``k`` most probable, ties in class order, as
    ``predict`` lists them (scikit-learn's ``top_k_accuracy_score`` breaks ties the other way)."""
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return (top == np.asarray(labels)[:, None]).any(1)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def classification_intervals(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    top_k: int,
    calibration_bins: int,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """``<metric>_ci_low`` / ``<metric>_ci_high`` for every headline metric, and per class under
    ``per_class`` (precision, recall, F1): Wilson for accuracy and top-k accuracy, percentile
    bootstrap over ``resamples`` seeded resamples of the samples for the rest."""
    y = np.asarray(labels, dtype=np.int64)
    n_samples, n_classes = probs.shape
    predicted = probs.argmax(1)
    # per-sample terms whose resample means are the loss and the calibration error
    p_true = np.clip(probs[np.arange(n_samples), y], np.finfo(np.float64).eps, 1.0)
    nll = -np.log(p_true)
    confidence = probs.max(1)
    which_bin = np.clip(np.ceil(confidence * calibration_bins).astype(np.int64) - 1, 0, None)
    which_bin = np.minimum(which_bin, calibration_bins - 1)
    gap = (predicted == y) - confidence  # summed per bin, |sum| / n is that bin's ECE term

    draws: dict[str, list[np.ndarray]] = {}
    for idx in resample_batches(n_samples, resamples, seed):
        scores = scores_from_confusion(confusion_stack(y, predicted, n_classes, idx))
        scores["loss"] = nll[idx].mean(1)
        bins = which_bin[idx] + np.arange(len(idx))[:, None] * calibration_bins
        per_bin = np.bincount(bins.ravel(), gap[idx].ravel(), len(idx) * calibration_bins)
        scores["ece"] = np.abs(per_bin.reshape(len(idx), calibration_bins)).sum(1) / n_samples
        if n_classes == 2:
            scores.update(_ranking_scores(y, probs[:, 1], idx))
        for key, value in scores.items():
            draws.setdefault(key, []).append(value)

    out: dict[str, Any] = {}
    per_class: dict[str, dict[str, float]] = {name: {} for name in classes}
    for key, parts in draws.items():
        if key == "accuracy":
            continue  # Wilson below: exact counts, no resampling noise
        low, high = percentile_interval(np.concatenate(parts))
        if key in ("precision", "recall", "f1"):
            for k, name in enumerate(classes):
                if not np.isnan(low[k]):  # NaN: no resample defines it (a class never predicted)
                    per_class[name].update(_bounds(key, low[k], high[k]))
        elif key not in ("roc_auc", "average_precision") or len(np.unique(y)) == 2:
            out.update(_bounds(key, low, high))
    out.update(_bounds("accuracy", *wilson_interval(int((predicted == y).sum()), n_samples)))
    if n_classes > top_k:
        hits = int(top_k_hits(probs, y, top_k).sum())
        out.update(_bounds(f"top{top_k}_accuracy", *wilson_interval(hits, n_samples)))
    out["per_class"] = per_class
    return out


def _ranking_scores(y: np.ndarray, score: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
    """ROC AUC and average precision of each resample (rows of ``idx``), vectorised over the
    resamples; NaN where a resample has one class only. The same values as scikit-learn's
    ``roc_auc_score`` (the Mann-Whitney statistic, ties as halves) and
    ``average_precision_score`` (precision at the end of each tie group, weighted by the
    positives in it), at a fraction of 1,000 calls' cost."""
    from scipy.stats import rankdata

    labels, scores = y[idx].astype(np.float64), score[idx]
    positives = labels.sum(1)
    negatives = labels.shape[1] - positives
    valid = (positives > 0) & (negatives > 0)
    ranks = rankdata(scores, axis=1)  # average ranks of ties
    pairs = np.where(valid, positives * negatives, 1)  # one class only: NaN below, no warning
    auc = ((ranks * labels).sum(1) - positives * (positives + 1) / 2) / pairs
    order = np.argsort(-scores, axis=1, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, 1)
    sorted_labels = np.take_along_axis(labels, order, 1)
    precision = sorted_labels.cumsum(1) / np.arange(1, labels.shape[1] + 1)
    # the precision counted at a position is the one at the end of its tie group
    n = labels.shape[1]
    ends = np.ones_like(sorted_scores, dtype=bool)
    ends[:, :-1] = sorted_scores[:, :-1] != sorted_scores[:, 1:]
    end_index = np.where(ends, np.arange(n), n)[:, ::-1]
    end_index = np.minimum.accumulate(end_index, axis=1)[:, ::-1]
    at_end = np.take_along_axis(precision, end_index, 1)
    ap = (sorted_labels * at_end).sum(1) / np.maximum(positives, 1)
    return {
        "roc_auc": np.where(valid, auc, np.nan),
        "average_precision": np.where(valid, ap, np.nan),
    }


def _bounds(key: str, low: float, high: float) -> dict[str, float]:
    return {f"{key}_ci_low": six_decimals(low), f"{key}_ci_high": six_decimals(high)}


def regression_intervals(
    predicted: np.ndarray, actual: np.ndarray, std: float, resamples: int, seed: int
) -> dict[str, float]:
    """Percentile-bootstrap ``_ci_low`` / ``_ci_high`` of RMSE, MAE, R², MAPE and the loss (MSE of
    standardised values) over ``resamples`` seeded resamples of the rows."""
    error = predicted - actual
    draws: dict[str, list[np.ndarray]] = {}
    for idx in resample_batches(len(actual), resamples, seed):
        e, a = error[idx], actual[idx]
        ss_tot = ((a - a.mean(1, keepdims=True)) ** 2).sum(1)
        scores = {
            "rmse": np.sqrt((e**2).mean(1)),
            "mae": np.abs(e).mean(1),
            # a resample of one repeated target defines no R² (0/0): skipped, not 1
            "r2": np.where(ss_tot > 0, 1 - _ratio((e**2).sum(1), ss_tot), np.nan),
            "loss": ((e / std) ** 2).mean(1),
        }
        if not np.any(actual == 0):
            scores["mape"] = np.abs(e / a).mean(1)
        for key, value in scores.items():
            draws.setdefault(key, []).append(value)
    out: dict[str, float] = {}
    for key, parts in draws.items():
        out.update(_bounds(key, *percentile_interval(np.concatenate(parts))))
    return out
