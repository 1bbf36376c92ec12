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
from torchstages.params.base import load_yaml, show_value

__all__ = ["ReportSources", "render_report", "write_report", "dvc_diffs"]

HEADLINE = [
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced accuracy"),
    ("f1_macro", "macro F1"),
    ("f1_weighted", "weighted F1"),
    ("top*_accuracy", "top-{k} accuracy"),
    ("roc_auc", "ROC AUC"),
    ("average_precision", "average precision"),
    ("loss", "log loss"),
    ("ece", "expected calibration error"),
]
# params sections the report shows, and the keys that cannot change a result
PARAM_SECTIONS = ("build_dataset", "train", "test")
NO_EFFECT = {"device", "threads", "workers", "test.batch_size", "test.gallery_size"}
PICTURES = [
    ("train", "curves.png", "Training curves"),
    ("test", "confusion.png", "Confusion matrix (test)"),
    ("test", "wrong.png", "Most confidently wrong test images"),
    ("train", "augmented.png", "Training images after augmentation"),
]


@dataclass(frozen=True)
class ReportSources:
    """The files a report reads; the defaults are the pipeline's own."""

    metrics: Path = paths.METRICS / "test.json"
    card: Path = paths.MODEL_CARD
    params: Path = paths.PARAMS
    plots: Path = paths.PLOTS
    processed: Path = paths.PROCESSED  # meta.json: the bad images build-dataset skipped


def write_report(
    out: Path = paths.REPORTS / "report.md",
    sources: ReportSources | None = None,
    against: str | None = None,
    worst: int = 10,
) -> None:
    """Write the report; with ``against`` (a git revision) append the DVC metrics/params diffs."""
    text = render_report(out, sources or ReportSources(), worst)
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
    lines = [
        "# Model report (test split)",
        "",
        f"Model `{arch['name']}` ({card['parameters']:,} parameters), best epoch "
        f"{best['epoch']} by {best['monitor']}, {len(card['classes'])} classes, "
        f"{metrics['samples']} test images.",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {label} | {value:.4f} |" for label, value in _headline(metrics)),
        "",
        "## Per class",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |"
            for name, m in metrics["per_class"].items()
        ),
        "",
        *_pictures(out, sources.plots),
        *_mistakes(sources.plots / "test" / "mistakes.csv", worst),
        *_skipped(sources.processed / "meta.json"),
        "## Params",
        "",
        "| param | value |",
        "|---|---|",
        *(f"| `{key}` | `{value}` |" for key, value in _params_rows(params)),
    ]
    return "\n".join(lines) + "\n"


def dvc_diffs(rev: str) -> str:
    """``dvc metrics diff --md`` and ``dvc params diff --md`` of the workspace against ``rev``."""
    parts = []
    for kind in ("metrics", "params"):
        cmd = [sys.executable, "-m", "dvc", kind, "diff", "--md", rev]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or ["failed"])[-1]
            raise UserError(f"dvc {kind} diff {rev}: {reason}")
        body = result.stdout.strip()
        if len(body.splitlines()) <= 2:  # nothing, or a table header without rows
            body = f"No {kind} changed."
        parts += [f"## {kind.capitalize()} against `{rev}`", "", body, ""]
    return "\n" + "\n".join(parts)


def _headline(metrics: dict[str, Any]) -> list[tuple[str, float]]:
    out = []
    for key, label in HEADLINE:
        if key == "top*_accuracy":
            top = sorted(k for k in metrics if re.fullmatch(r"top\d+_accuracy", k))
            out += [(label.format(k=k[3:].split("_")[0]), metrics[k]) for k in top]
        elif key in metrics:
            out.append((label, metrics[key]))
    return out


def _pictures(out: Path, plots: Path) -> list[str]:
    lines = []
    for folder, name, caption in PICTURES:
        picture = plots / folder / name
        if picture.exists():
            link = Path(os.path.relpath(picture, out.parent)).as_posix()
            lines += [f"### {caption}", "", f"![{caption}]({link})", ""]
    return ["## Pictures", "", *lines] if lines else []


def _mistakes(path: Path, worst: int) -> list[str]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    lines = [f"## Most confidently wrong ({min(worst, len(rows))} of {len(rows)} shown)", ""]
    if not rows:
        return [*lines, "None: every test image was classified correctly.", ""]
    lines += ["| file | true | predicted | probability |", "|---|---|---|---|"]
    lines += [
        f"| {r['file']} | {r['actual']} | {r['predicted']} | {float(r['probability']):.3f} |"
        for r in rows[:worst]
    ]
    return [*lines, ""]


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


def _params_rows(params: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif prefix.rsplit(".", 1)[-1] not in NO_EFFECT and prefix not in NO_EFFECT:
            rows.append((prefix, show_value(value)))

    for section in PARAM_SECTIONS:
        walk(section, params.get(section) or {})
    return rows
