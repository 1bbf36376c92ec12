"""The markdown report a CI job posts on a pull request, built only from tracked files.

Inputs are the test metrics, the model card, ``params.yaml``, the test plots folder and the bad
images skipped (``data/processed/meta.json``), so the test stage and ``torchstages report`` write
the same bytes from the same files.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchstages import paths
from torchstages.errors import UserError
from torchstages.io import read_json, write_text
from torchstages.kinds import kind_of, sample_noun
from torchstages.params.base import load_yaml, show_value
from torchstages.wording import counted

__all__ = ["ReportSources", "render_report", "write_report", "dvc_diffs"]

HEADLINE = [
    ("accuracy", "accuracy"),
    ("baseline_accuracy", "accuracy of always answering the most frequent train class"),
    ("balanced_accuracy", "balanced accuracy"),
    ("f1_macro", "macro F1"),
    ("f1_weighted", "weighted F1"),
    ("top*_accuracy", "top-{k} accuracy"),
    ("roc_auc", "ROC AUC"),
    ("average_precision", "average precision"),
    ("loss", "log loss"),
    ("ece", "expected calibration error"),
]
REGRESSION_HEADLINE = [
    ("rmse", "RMSE"),
    ("baseline_rmse", "RMSE of always predicting the train mean"),
    ("mae", "MAE"),
    ("r2", "R²"),
    ("mape", "MAPE (a fraction: 0.05 is 5%)"),
    ("loss", "loss (MSE of standardised values)"),
]
FORECAST_HEADLINE = [
    ("mase", "MASE (below 1: better than the train range's seasonal naive)"),
    ("smape", "sMAPE (%)"),
    ("mae", "MAE"),
    ("rmse", "RMSE"),
    ("loss", "loss (MSE of scaled values)"),
]
# params sections the report shows, and the keys that cannot change a result
PARAM_SECTIONS = ("split", "build_dataset", "train", "test")
# split.kind: the report names the kind it found anyway
NO_EFFECT = {"device", "threads", "workers", "split.kind", "test.batch_size", "test.gallery_size"}
# keys that only some data kinds or tasks read: another's report leaves them out
_CLASSES, _VALUES = ("classification",), ("regression", "forecast")
READ_ONLY_BY = {
    "split.seed": ("images", "table", "text"),  # a series' split is chronological
    "split.table": ("table",),
    "split.text": ("text",),
    "split.series": ("series",),
    "split.near_duplicates": ("images", "table"),
    "split.near_duplicate_threshold": ("images",),
    "build_dataset.table": ("table",),
    "build_dataset.series": ("series",),
    "build_dataset.text": ("text",),
    "train.scale_to_rows": ("table",),
    "train.huber_delta": _VALUES,  # the huber and smooth_l1 losses of values
    "train.label_smoothing": _CLASSES,
    "train.class_weights": _CLASSES,
    "test.top_k": _CLASSES,
    "test.calibration_bins": _CLASSES,
    # a forecast's metrics have no bootstrap interval
    "test.bootstrap_resamples": ("images", "table", "text"),
    "test.bootstrap_seed": ("images", "table", "text"),
    **dict.fromkeys(
        (
            "build_dataset.image_size",
            "build_dataset.color",
            "build_dataset.resize",
            "build_dataset.interpolation",
            "build_dataset.on_bad_image",
            "build_dataset.background",
            "build_dataset.max_pixels",
            "train.augment",
            "train.channels_last",
        ),
        ("images",),
    ),
}
PICTURES = [
    ("train", "curves.png", "Training curves"),
    ("test", "confusion.png", "Confusion matrix (test)"),
    ("test", "wrong.png", "Most confidently wrong test images"),
    ("train", "augmented.png", "Training images after augmentation"),
    ("test", "predicted_vs_actual.png", "Predicted vs actual (test)"),
    ("test", "residuals.png", "Residuals (test)"),
    ("test", "forecast.png", "Actual vs forecast (test)"),
    ("test", "horizon.png", "Error by horizon step (test)"),
]


@dataclass(frozen=True)
class ReportSources:
    """The files a report reads; the defaults are the pipeline's own."""

    metrics: Path = paths.METRICS / "test.json"
    card: Path = paths.MODEL_CARD
    params: Path = paths.PARAMS
    plots: Path = paths.PLOTS
    splits: Path = paths.SPLITS  # summary.json: given splits and near duplicates the split found
    processed: Path = paths.PROCESSED  # meta.json: the bad images build-dataset skipped


def write_report(
    out: Path = paths.REPORTS / "report.md",
    sources: ReportSources | None = None,
    against: str | None = None,
    worst: int = 10,
    appendix: str = "",
) -> None:
    """Write the report, then ``appendix`` (markdown: the comparison's verdict, which a PR
    comment should show before the long tables); with ``against`` (a git revision) append the
    DVC metrics/params diffs."""
    text = render_report(out, sources or ReportSources(), worst) + appendix
    if against is not None:
        text += dvc_diffs(against)
    write_text(out, text)


def render_report(out: Path, sources: ReportSources, worst: int = 10) -> str:
    """The markdown text; pictures are linked relative to ``out`` and only if they exist."""
    for path in (sources.metrics, sources.card):
        if not path.exists():
            raise UserError(f"{path}: not found (run `dvc repro` first)")
    metrics, card = read_json(sources.metrics), read_json(sources.card)
    params = load_yaml(sources.params)
    best, arch = card["best"], card["architecture"]
    summary_path = sources.splits / "summary.json"
    split_summary = read_json(summary_path) if summary_path.exists() else {}
    given = split_summary.get("given_splits")
    if card.get("task") == "regression":
        what = f"regression of `{card['target']}`, {metrics['samples']} test rows"
    elif card.get("task") == "forecast":
        what = (
            f"forecast of `{card['target']}` {card['horizon']} steps ahead from "
            f"{card['lookback']}, {metrics['samples']} test windows"
        )
    else:
        unit = sample_noun(kind_of(card), metrics["samples"])
        what = f"{len(card['classes'])} classes, {metrics['samples']} test {unit}"
        if "target" in card:  # a table's or text's label column (images: their folders)
            what = f"classification of `{card['target']}`, {what}"
    lines = [
        "# Model report (test split)",
        "",
        f"Model `{arch['name']}` ({card['parameters']:,} parameters), best epoch "
        f"{best['epoch']} by {best['monitor']}, {what}.",
        "",
        *_headline_table(metrics),
        "",
        *_per_class(metrics),
        *_baselines(metrics),
        *_pictures(out, sources.plots),
        *_mistakes(sources.plots / "test", worst, kind_of(card)),
        *_skipped(sources.processed / "meta.json"),
        *_given_splits(given),
        *_near_duplicates(split_summary.get("near_duplicates")),
        "## Params",
        "",
        "| param | value |",
        "|---|---|",
        *(
            f"| `{key}` | `{value}` |"
            for key, value in _params_rows(
                params,
                kind_of(card),
                card.get("task", "classification"),
                given is not None,
                card.get("augment"),
            )
        ),
    ]
    return "\n".join(lines) + "\n"


def dvc_diffs(rev: str) -> str:
    """``dvc metrics diff --md`` and ``dvc params diff --md`` of the workspace against ``rev``."""
    parts = []
    for kind in ("metrics", "params"):
        cmd = [sys.executable, "-m", "dvc", kind, "diff", "--md", rev]
        # UTF-8 both ways, whatever the locale: params and metrics may name a class "négatif"
        env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
        result = subprocess.run(cmd, capture_output=True, encoding="utf-8", env=env)
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or ["failed"])[-1]
            raise UserError(f"dvc {kind} diff {rev}: {reason}")
        body = result.stdout.strip()
        if len(body.splitlines()) <= 2:  # nothing, or a table header without rows
            body = f"No {kind} changed."
        parts += [f"## {kind.capitalize()} against `{rev}`", "", body, ""]
    return "\n" + "\n".join(parts)


def _per_class(metrics: dict[str, Any]) -> list[str]:
    if "per_class" not in metrics:
        return []
    return [
        "## Per class",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |"
            for name, m in metrics["per_class"].items()
        ),
        "",
    ]


def _headline(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, label) of the headline metrics present."""
    out = []
    table = HEADLINE if "rmse" not in metrics else REGRESSION_HEADLINE
    for key, label in FORECAST_HEADLINE if "mase" in metrics else table:
        if key == "top*_accuracy":
            top = sorted(k for k in metrics if re.fullmatch(r"top\d+_accuracy", k))
            out += [(k, label.format(k=k[3:].split("_")[0])) for k in top]
        elif key in metrics:
            out.append((key, label))
    return out


def _baselines(metrics: dict[str, Any]) -> list[str]:
    """A forecast's errors beside the naive forecasts' on the same windows."""
    if "baselines" not in metrics:
        return []
    rows = [("model", metrics), *metrics["baselines"].items()]
    return [
        "## Against naive forecasts (same windows)",
        "",
        "| forecast | MASE | sMAPE (%) | MAE | RMSE |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {m['mase']:.4f} | {m['smape']:.2f} | {m['mae']:.4g} | {m['rmse']:.4g} |"
            for name, m in rows
        ),
        "",
        f"The model {'beats' if metrics['beats_seasonal_naive'] else 'does NOT beat'} the "
        f"seasonal naive forecast (season {metrics['season']}) and "
        f"{'beats' if metrics['beats_naive'] else 'does NOT beat'} the naive one.",
        "",
        *(
            [
                (
                    "MASE has no scale for the series: it repeats exactly every season in its "
                    "train range (the seasonal naive forecast has no error there), so its MASE "
                    "is its MAE and the table's 'below 1' does not apply; compare the MAE."
                    if n == 1
                    else f"MASE has no scale for {n} series: each repeats exactly every season "
                    "in its train range (the seasonal naive forecast has no error there), so "
                    "their MASE is their MAE and the table's 'below 1' does not apply to them."
                ),
                "",
            ]
            if (n := metrics.get("mase_is_mae_for_series"))
            else []
        ),
    ]


def _headline_table(metrics: dict[str, Any]) -> list[str]:
    """The headline metrics, with their 95% intervals where the evaluation computed them (a
    forecast's metrics have none: then no empty column)."""
    rows = _headline(metrics)
    if not any(f"{key}_ci_low" in metrics for key, _ in rows):
        return [
            "| metric | value |",
            "|---|---|",
            *(f"| {label} | {metrics[key]:.4f} |" for key, label in rows),
        ]
    counted_right = [
        label
        for key, label in rows
        if key.endswith("accuracy") and "balanced" not in key and f"{key}_ci_low" in metrics
    ]
    how = (
        f"Intervals: Wilson score for {' and '.join(counted_right)} (counts of right answers); "
        "a percentile bootstrap over the test split for the others (`test.bootstrap_resamples`), "
        "which cannot reach beyond what the split shows: a perfect score gets 1.0000 to 1.0000."
        if counted_right
        else "Intervals: a percentile bootstrap over the test split (`test.bootstrap_resamples`)."
    )
    return [
        "| metric | value | 95% interval |",
        "|---|---|---|",
        *(f"| {label} | {metrics[key]:.4f} | {_interval(metrics, key)} |" for key, label in rows),
        "",
        how,
    ]


def _interval(metrics: dict[str, Any], key: str) -> str:
    low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    return "" if low is None or high is None else f"{low:.4f} to {high:.4f}"


def _pictures(out: Path, plots: Path) -> list[str]:
    lines = []
    for folder, name, caption in PICTURES:
        picture = plots / folder / name
        if picture.exists():
            link = Path(os.path.relpath(picture, out.parent)).as_posix()
            lines += [f"### {caption}", "", f"![{caption}]({link})", ""]
    return ["## Pictures", "", *lines] if lines else []


def _mistakes(folder: Path, worst: int, kind: str) -> list[str]:
    """The most confidently wrong samples: their files (or lines), and for texts the text,
    escaped so no text can break the markdown table (pipes, backticks, emphasis, HTML)."""
    texts = folder / "wrong_texts.csv"
    path = texts if texts.exists() else folder / "mistakes.csv"
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    lines = [f"## Most confidently wrong ({min(worst, len(rows))} of {len(rows)} shown)", ""]
    if not rows:
        return [*lines, f"None: every test {sample_noun(kind)} was classified correctly.", ""]
    if path == texts:
        lines += ["| line | true | predicted | probability | text |", "|---|---|---|---|---|"]
    else:
        # a table's rows are named by their line in the file ("line 159"), an image by its file
        where = "row" if kind == "table" else "file"
        lines += [f"| {where} | true | predicted | probability |", "|---|---|---|---|"]
    # a text's label came from the same file as the text: escape both; file names as before
    shown = _escape if path == texts else str
    for r in rows[:worst]:
        name = next(iter(r.values()))  # the first column: a file, or a table's row ("line 159")
        cells = [name, shown(r["actual"]), shown(r["predicted"])]
        cells.append(f"{float(r['probability']):.3f}")
        cells += [_escape(r["text"])] if "text" in r else []
        lines.append(f"| {' | '.join(cells)} |")
    return [*lines, ""]


def _escape(text: str) -> str:
    """Markdown-inert text: every punctuation character markdown or HTML reads is backslashed."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~&])", r"\\\1", text)


def _skipped(meta_path: Path) -> list[str]:
    """The bad images build_dataset.on_bad_image: skip left out: every one, with its reason."""
    skipped = read_json(meta_path).get("skipped", []) if meta_path.exists() else []
    if not skipped:
        return []
    return [
        f"## Bad images skipped ({len(skipped)}, build_dataset.on_bad_image: skip)",
        "",
        "| file | class | split | reason |",
        "|---|---|---|---|",
        *(f"| {s['path']} | {s['label']} | {s['split']} | {s['reason']} |" for s in skipped),
        "",
    ]


def _near_duplicates(near: dict[str, Any] | None, shown: int = 5) -> list[str]:
    if near is None:
        return []
    kept = (
        "each kept within one split"
        if near["mode"] == "group"
        else f"only reported: {near['groups_across_splits']} groups span more than one split"
    )
    if "digits" in near:  # a table: rows equal after rounding
        what = (
            f"{near['groups']} groups of near-duplicate rows ({near['rows']} rows equal after "
            f"rounding numbers to {near['digits']} significant digits), {kept}."
        )
        examples = [f"lines {', '.join(map(str, g))}" for g in near["examples"][:shown]]
    else:
        what = (
            f"{near['groups']} groups of near copies ({near['files']} files, perceptual hashes "
            f"within {near['threshold']} bits), {kept}; pictures in data/splits/near_duplicates.png."
        )
        examples = [", ".join(group) for group in near["examples"][:shown]]
    if len(examples) < near["groups"]:
        what += f" The first {len(examples)} groups:"
    lines = ["## Near duplicates", "", what, ""]
    lines += [f"- {example}" for example in examples]
    return [*lines, ""] if near["examples"] else lines


def _given_splits(given: dict[str, Any] | None) -> list[str]:
    """What the split stage made of images that came split already."""
    if given is None:
        return []
    folders = ", ".join(f"`{folder}/`" for folder in sorted(given["folders"]))
    if given["mode"] == "pool":
        return [
            "## Given splits",
            "",
            f"The data came split ({folders}): pooled and split anew.",
            "",
        ]
    carved = given["carved_from_train"]
    text = f"The data came split ({folders}): each folder kept as its split"
    text += f"; {' and '.join(carved)} carved from train." if carved else "."
    if dropped := given["dropped"]:
        text += (
            f" {counted(len(dropped), 'file')} left out of the split it came in, as a copy of a "
            f"file of a split that scores the model (`data/splits/summary.json`, "
            f"`given_splits.dropped`); the first: `{dropped[0]['path']}` ({dropped[0]['how']}: "
            f"`{dropped[0]['copy_of']}`)."
        )
    return ["## Given splits", "", text, ""]


def _params_rows(
    params: dict[str, Any],
    kind: str,
    task: str,
    came_split: bool = False,
    augment: dict[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """``augment``: the augmentation the model card records (crop, flip and rotation always,
    the others only when on); keys it leaves out are left out here too."""
    rows: list[tuple[str, str]] = []
    unread = tuple(p for p, by in READ_ONLY_BY.items() if kind not in by and task not in by)
    if not came_split:  # the key means nothing to data that did not come split
        unread += ("split.given_splits",)

    def walk(prefix: str, value: Any) -> None:
        if prefix.startswith(unread):
            return
        augment_key = prefix.startswith("train.augment.") and prefix.split(".")[2]
        if augment is not None and augment_key and augment_key not in augment:
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif prefix.rsplit(".", 1)[-1] not in NO_EFFECT and prefix not in NO_EFFECT:
            rows.append((prefix, show_value(value)))

    for section in PARAM_SECTIONS:
        walk(section, params.get(section) or {})
    return rows
