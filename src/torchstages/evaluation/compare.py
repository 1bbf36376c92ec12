"""``torchstages compare``: is run B really better than run A on the same samples?

Both runs' per-sample predictions (``predictions/<stage>.csv``, kept in git) are paired by
sample. Classification: McNemar's exact test on the samples whose outcome changed (the verdict),
Newcombe's paired interval of the accuracy difference and a paired bootstrap interval of the
macro-F1 difference. Regression: paired bootstrap
intervals of the RMSE and MAE differences. Forecasts: MAE and RMSE over windows, resampled in
runs of ``horizon`` neighbouring windows (their targets overlap). A task plugs in by adding a
function to ``_TASKS`` that turns two aligned runs into a :class:`_Paired`.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torchstages import paths
from torchstages.errors import UserError
from torchstages.evaluation.intervals import (
    block_resample_batches,
    confusion_stack,
    percentile_interval,
    resample_batches,
    scores_from_confusion,
    wilson_interval,
)
from torchstages.evaluation.predictions import Predictions, parse_predictions

__all__ = [
    "Comparison",
    "compare_predictions",
    "compare_revisions",
    "comparison_markdown",
    "comparison_table",
    "load_predictions",
    "mcnemar_exact",
    "paired_accuracy_interval",
]

WORKSPACE = "workspace"
ALPHA = 0.05
STAGES = ("validate", "test")


@dataclass(frozen=True)
class Statistic:
    """One metric of both runs on all samples, and the paired interval of B - A."""

    name: str
    a: float
    b: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Comparison:
    task: str
    samples: int
    statistics: list[Statistic]
    better: int  # samples whose outcome improved from A to B (became right, or error shrank)
    worse: int
    better_words: str
    worse_words: str
    p_value: float | None  # McNemar's exact test (classification)
    significant: bool

    def verdict(self, a: str, b: str, split: str) -> str:
        """One line: the headline difference, the changed samples, significant at 5% or not."""
        head = self.statistics[0]
        diff = head.b - head.a
        test = (
            f"McNemar exact p = {self.p_value:.3g}"
            if self.p_value is not None
            else f"the {head.name} interval {'excludes' if self.significant else 'includes'} 0"
        )
        return (
            f"{b} vs {a} on {split} ({self.samples} samples): {head.name} {head.a:.4f} -> "
            f"{head.b:.4f} ({diff:+.4f}, 95% CI {head.ci_low:+.4f} to {head.ci_high:+.4f}); "
            f"{self.better} {self.better_words}, {self.worse} {self.worse_words}; {test}: "
            f"{'significant' if self.significant else 'not significant'} at 5%"
        )


@dataclass(frozen=True)
class _Paired:
    """What a task contributes: per-resample statistics of both runs, and the changed samples."""

    statistics: Callable[[np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]
    better: int
    worse: int
    better_words: str
    worse_words: str
    p_value: float | None  # None: significance from the first statistic's interval
    block: int = 1  # resample runs of this many neighbouring samples (correlated neighbours)
    groups: np.ndarray | None = None  # runs stay within one group (the series of a panel)
    # the first statistic's interval when a closed form fits it better than the bootstrap
    head_interval: tuple[float, float] | None = None


def mcnemar_exact(better: int, worse: int) -> float:
    """Two-sided exact McNemar p-value: under "no difference" each changed sample is equally
    likely to have changed either way, so min(better, worse) is Binomial(better + worse, 1/2)."""
    n = better + worse
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(better, worse) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integers, one rounding at the division


def paired_accuracy_interval(
    both: int, worse: int, better: int, neither: int
) -> tuple[float, float]:
    """95% interval of the accuracy difference B - A from the paired outcomes: samples both runs
    get right, only A (``worse``), only B (``better``), neither. Newcombe's hybrid score interval
    for paired proportions (Newcombe 1998, method 10: the Wilson intervals of both accuracies,
    combined with their correlation). Unlike a bootstrap, it stays honest when few samples
    changed: 5 became right and none wrong, of 1,000, gives an interval that includes 0, where
    the bootstrap's excludes it."""
    n = both + worse + better + neither
    acc_b, acc_a = (both + better) / n, (both + worse) / n
    low_b, high_b = wilson_interval(both + better, n)
    low_a, high_a = wilson_interval(both + worse, n)
    margins = (both + worse) * (better + neither) * (both + better) * (worse + neither)
    phi = (both * neither - worse * better) / math.sqrt(margins) if margins else 0.0
    down = (
        (acc_b - low_b) ** 2 - 2 * phi * (acc_b - low_b) * (high_a - acc_a) + (high_a - acc_a) ** 2
    )
    up = (high_b - acc_b) ** 2 - 2 * phi * (high_b - acc_b) * (acc_a - low_a) + (acc_a - low_a) ** 2
    diff = acc_b - acc_a
    return diff - math.sqrt(max(down, 0.0)), diff + math.sqrt(max(up, 0.0))


def _classification(a: Predictions, b: Predictions) -> _Paired:
    names = sorted(set(a.truth) | set(a.predicted) | set(b.predicted))
    code = {name: k for k, name in enumerate(names)}
    truth, pred_a, pred_b = (
        np.array([code[x] for x in v]) for v in (a.truth, a.predicted, b.predicted)
    )

    def statistics(idx: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        sa = scores_from_confusion(confusion_stack(truth, pred_a, len(names), idx))
        sb = scores_from_confusion(confusion_stack(truth, pred_b, len(names), idx))
        return {
            "accuracy": (sa["accuracy"], sb["accuracy"]),
            "macro F1": (sa["f1_macro"], sb["f1_macro"]),
        }

    right_a, right_b = pred_a == truth, pred_b == truth
    better, worse = int((~right_a & right_b).sum()), int((right_a & ~right_b).sum())
    return _Paired(
        statistics,
        better,
        worse,
        "became right",
        "became wrong",
        mcnemar_exact(better, worse),
        head_interval=paired_accuracy_interval(
            int((right_a & right_b).sum()), worse, better, int((~right_a & ~right_b).sum())
        ),
    )


def _regression(a: Predictions, b: Predictions) -> _Paired:
    err_a, err_b = np.abs(a.predicted - a.truth), np.abs(b.predicted - b.truth)

    def statistics(idx: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {
            "RMSE": (np.sqrt((err_a[idx] ** 2).mean(1)), np.sqrt((err_b[idx] ** 2).mean(1))),
            "MAE": (err_a[idx].mean(1), err_b[idx].mean(1)),
        }

    return _Paired(
        statistics,
        int((err_b < err_a).sum()),
        int((err_b > err_a).sum()),
        "got closer",
        "got further",
        None,
    )


def _forecast(a: Predictions, b: Predictions) -> _Paired:
    """Per window, the errors of all its horizon steps; a window got closer when its mean
    absolute error shrank. Steps whose actual value the split filled (NaN) are not scored."""
    real = ~np.isnan(a.truth)
    err_a = np.abs(np.where(real, a.predicted - a.truth, 0.0))
    err_b = np.abs(np.where(real, b.predicted - b.truth, 0.0))
    # per window, the absolute errors of its read steps summed: both runs have the same steps,
    # so comparing sums compares mean errors
    window_a, window_b = err_a.sum(1), err_b.sum(1)

    def mean(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return values[idx].sum((1, 2)) / np.maximum(real[idx].sum((1, 2)), 1)

    def statistics(idx: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {
            "MAE": (mean(err_a, idx), mean(err_b, idx)),
            "RMSE": (np.sqrt(mean(err_a**2, idx)), np.sqrt(mean(err_b**2, idx))),
        }

    return _Paired(
        statistics,
        int((window_b < window_a).sum()),
        int((window_b > window_a).sum()),
        "windows got closer",
        "windows got further",
        None,
        block=a.truth.shape[1],
        groups=np.unique([series for series, _ in a.ids], return_inverse=True)[1],
    )


_TASKS: dict[str, Callable[[Predictions, Predictions], _Paired]] = {
    "classification": _classification,
    "regression": _regression,
    "forecast": _forecast,
}


def compare_predictions(
    a: Predictions, b: Predictions, resamples: int = 1000, seed: int = 0
) -> Comparison:
    """Pair ``b`` with ``a`` sample by sample; raise ``UserError`` if they are not the same split."""
    b = _aligned(a, b)
    paired = _TASKS[a.task](a, b)
    n = len(a.ids)
    full = paired.statistics(np.arange(n)[None, :])
    draws: dict[str, list[np.ndarray]] = {name: [] for name in full}
    batches = (
        resample_batches(n, resamples, seed)
        if paired.block == 1
        else block_resample_batches(n, paired.block, resamples, seed, paired.groups)
    )
    for idx in batches:
        for name, (va, vb) in paired.statistics(idx).items():
            draws[name].append(vb - va)
    statistics = []
    for name, (va, vb) in full.items():
        low, high = percentile_interval(np.concatenate(draws[name]))
        if paired.head_interval is not None and not statistics:
            low, high = paired.head_interval
        statistics.append(Statistic(name, float(va[0]), float(vb[0]), float(low), float(high)))
    head = statistics[0]
    significant = (
        paired.p_value < ALPHA
        if paired.p_value is not None
        else not head.ci_low <= 0 <= head.ci_high
    )
    return Comparison(
        a.task,
        n,
        statistics,
        paired.better,
        paired.worse,
        paired.better_words,
        paired.worse_words,
        paired.p_value,
        significant,
    )


def _aligned(a: Predictions, b: Predictions) -> Predictions:
    """``b`` in ``a``'s sample order; refuses runs whose splits (files, contents, labels) differ."""
    if a.task != b.task:
        raise UserError(f"cannot compare a {a.task} run with a {b.task} run")
    where = {key: i for i, key in enumerate(b.ids)}
    only_a = sum(key not in where for key in a.ids)
    only_b = len(b.ids) - (len(a.ids) - only_a)
    if only_a or only_b:
        raise UserError(
            f"the runs were evaluated on different splits: {only_a} samples only in the first, "
            f"{only_b} only in the second (files or their contents differ); rerun one on the "
            "other's split to compare"
        )
    order = np.array([where[key] for key in a.ids], dtype=np.int64)
    truth = b.truth[order]
    same = truth == a.truth
    if a.task == "forecast":  # NaN: a value the split filled, in both runs
        same |= np.isnan(truth) & np.isnan(a.truth)
    relabelled = int((~same).sum())
    if relabelled:
        raise UserError(f"the runs' splits differ: {relabelled} samples have another label")
    return Predictions(b.task, a.ids, truth, b.predicted[order])


def load_predictions(rev: str | None, path: Path) -> Predictions:
    """``path`` as committed in git revision ``rev``, or in the workspace when ``rev`` is None."""
    if rev is None:
        try:
            return parse_predictions(path.read_text(encoding="utf-8"), str(path))
        except FileNotFoundError:
            raise UserError(f"{path}: not found (run `dvc repro` first)") from None
    # ./ makes the path relative to the current folder, not to the top of the git repository
    cmd = ["git", "show", f"{rev}:./{path.as_posix()}"]
    # the committed file's bytes are UTF-8, whatever the locale says
    result = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace")
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise UserError(
            f"{rev}:{path}: cannot read it ({reason}); runs committed before per-sample "
            "predictions existed cannot be compared"
        )
    return parse_predictions(result.stdout, f"{rev}:{path}")


def compare_revisions(
    rev_a: str = "HEAD", rev_b: str | None = None, stage: str = "test"
) -> tuple[Comparison, str, str]:
    """Compare ``stage``'s predictions of two revisions (``rev_b`` None: the workspace);
    returns the comparison and the two names to show."""
    if stage not in STAGES:
        raise UserError(f"compare: unknown stage {stage!r} (allowed: {', '.join(STAGES)})")
    path = paths.PREDICTIONS / f"{stage}.csv"
    result = compare_predictions(load_predictions(rev_a, path), load_predictions(rev_b, path))
    return result, rev_a, rev_b or WORKSPACE


def comparison_markdown(rev: str, stage: str = "test") -> str:
    """The report section: the workspace against ``rev``, or why they could not be compared."""
    lines = [f"## Is it really better? (`{stage}`, workspace against `{rev}`)", ""]
    try:
        result, name_a, name_b = compare_revisions(rev, None, stage)
    except UserError as exc:
        return "\n".join([*lines, f"Not compared: {exc}.", ""]) + "\n"
    return "\n".join([*lines, result.verdict(name_a, name_b, stage) + ".", ""]) + (
        "\n" + comparison_table(result, name_a, name_b) + "\n"
    )


def comparison_table(result: Comparison, name_a: str, name_b: str) -> str:
    """Markdown table: each metric in both runs and the paired interval of the difference."""
    lines = [
        f"| metric | {name_a} | {name_b} | {name_b} - {name_a} (95% paired interval) |",
        "|---|---|---|---|",
        *(
            f"| {s.name} | {s.a:.4f} | {s.b:.4f} | {s.b - s.a:+.4f} ({s.ci_low:+.4f} to "
            f"{s.ci_high:+.4f}) |"
            for s in result.statistics
        ),
    ]
    return "\n".join(lines) + "\n"
