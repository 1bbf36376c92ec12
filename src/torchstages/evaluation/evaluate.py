"""The validate and test stages: evaluate the saved model on one split, write metrics and plots."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from torchstages import paths as pipeline
from torchstages.data.images import Preprocessing
from torchstages.data.loader import Normalizer
from torchstages.data.split import read_split
from torchstages.data.store import load_split
from torchstages.device import resolve_device
from torchstages.evaluation.classification import classify_rows
from torchstages.evaluation.inference import predict_logits
from torchstages.evaluation.plot_data import mistake_order
from torchstages.evaluation.report import ReportSources, write_report
from torchstages.io import write_json
from torchstages.kinds import kind_of, sample_noun
from torchstages.models.saved import check_trained_on, load_model
from torchstages.params.evaluate import EvaluateParams

__all__ = ["EvalPaths", "draw_class_pictures", "evaluate_split"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalPaths:
    """Where one evaluation reads and writes."""

    processed: Path
    splits: Path
    weights: Path
    card: Path
    metrics: Path
    plots_dir: Path
    report: Path | None = None
    params: Path = pipeline.PARAMS  # read only by the report
    predictions: Path | None = None

    @classmethod
    def for_stage(cls, stage: str, report: Path | None = None) -> EvalPaths:
        """The pipeline's paths for the ``validate`` or ``test`` stage (mirrored in dvc.yaml)."""
        return cls(
            processed=pipeline.PROCESSED,
            splits=pipeline.SPLITS,
            weights=pipeline.WEIGHTS,
            card=pipeline.MODEL_CARD,
            metrics=pipeline.METRICS / f"{stage}.json",
            plots_dir=pipeline.PLOTS / stage,
            report=report,
            predictions=pipeline.PREDICTIONS / f"{stage}.csv",
        )


# the params section each split is evaluated under (its device errors name it)
_SECTIONS = {"val": "validate", "test": "test"}


def evaluate_split(split: str, params: EvaluateParams, paths: EvalPaths) -> dict[str, Any]:
    """Evaluate once, in order, in eval mode; write metrics, plot data, pictures (and the report).

    Everything written is byte-stable: the same model and data give the same files.
    """
    device = resolve_device(params.device, f"{_SECTIONS[split]}.device")
    model, card = load_model(paths.weights, paths.card)
    meta = check_trained_on(card, paths.card, paths.processed)
    if kind_of(meta) in ("table", "text"):
        return _evaluate_table(split, params, paths, model, card, device)
    if kind_of(meta) == "series":
        return _evaluate_series(split, params, paths, model, card, device)
    images, labels = load_split(paths.processed, split)
    labels = np.asarray(labels)
    prep = Preprocessing.from_dict(card["preprocessing"])
    logits = predict_logits(
        model.to(device), images, Normalizer(prep.mean, prep.std, device), params.batch_size, device
    )
    classes = card["classes"]
    # build_dataset.on_bad_image: skip dropped these rows from the arrays: keep the two aligned
    dropped = {s["path"] for s in meta.get("skipped", ()) if s["split"] == split}
    rows = [row for row in read_split(paths.splits / f"{split}.csv") if row.path not in dropped]
    metrics, probs = classify_rows(
        logits, labels, classes, params, rows, paths.processed, paths.plots_dir, paths.predictions
    )
    write_json(paths.metrics, metrics)
    draw_class_pictures(
        paths.plots_dir,
        split,
        lambda shown: np.asarray(images[shown]),
        probs,
        labels,
        classes,
        params.gallery_size,
    )
    _write_report(paths)
    log.info(
        "%s: loss %.4f  %s on %d samples -> %s, %s",
        split,
        metrics["loss"],
        _classes_summary(metrics),
        metrics["samples"],
        paths.metrics,
        paths.plots_dir,
    )
    return metrics


def _classes_summary(metrics: dict[str, Any]) -> str:
    return (
        f"accuracy {metrics['accuracy']:.4f} (always the most frequent train class: "
        f"{metrics['baseline_accuracy']:.4f})  f1_macro {metrics['f1_macro']:.4f}"
    )


def _write_report(paths: EvalPaths) -> None:
    if paths.report is not None:
        # plots_dir is <plots>/<stage>; the report also links <plots>/train
        sources = ReportSources(
            paths.metrics,
            paths.card,
            paths.params,
            paths.plots_dir.parent,
            splits=paths.splits,
            processed=paths.processed,
        )
        write_report(paths.report, sources)


def _evaluate_table(
    split: str, params: EvaluateParams, paths: EvalPaths, model, card: dict[str, Any], device
) -> dict[str, Any]:
    from torchstages.evaluation.figures import confusion_figure, save_png

    if kind_of(card) == "text":
        from torchstages.text.evaluate import evaluate_text as evaluate_rows
    else:
        from torchstages.tables.evaluate import evaluate_table as evaluate_rows

    metrics, outputs, truth = evaluate_rows(
        split,
        model,
        card,
        paths.processed,
        paths.splits,
        paths.plots_dir,
        params,
        device,
        paths.predictions,
    )
    write_json(paths.metrics, metrics)
    if card["task"] == "classification":
        classes, labels = card["classes"], truth
        matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
        np.add.at(matrix, (labels, outputs.argmax(1)), 1)
        title = (
            f"Confusion matrix ({split}, {len(labels)} {sample_noun(kind_of(card), len(labels))})"
        )
        save_png(confusion_figure(matrix, classes, title), paths.plots_dir / "confusion.png")
        summary = _classes_summary(metrics)
    else:
        from torchstages.tables.evaluate import draw_regression

        draw_regression(paths.plots_dir, split, outputs, truth)
        summary = (
            f"rmse {metrics['rmse']:.4g} (predicting the train mean: {metrics['baseline_rmse']:.4g})"
            f"  mae {metrics['mae']:.4g}  r2 {metrics['r2']:.4f}"
        )
    _write_report(paths)
    log.info(
        "%s: loss %.4f  %s on %d %s -> %s, %s",
        split,
        metrics["loss"],
        summary,
        metrics["samples"],
        sample_noun(kind_of(card), metrics["samples"]),
        paths.metrics,
        paths.plots_dir,
    )
    return metrics


def _evaluate_series(
    split: str, params: EvaluateParams, paths: EvalPaths, model, card: dict[str, Any], device
) -> dict[str, Any]:
    from torchstages.series.evaluate import draw_series, evaluate_series

    metrics, _ = evaluate_series(
        split,
        model,
        card,
        paths.processed,
        paths.splits,
        paths.plots_dir,
        params.batch_size,
        device,
        paths.predictions,
    )
    write_json(paths.metrics, metrics)
    draw_series(paths.plots_dir, split, metrics, card["target"])
    _write_report(paths)
    seasonal = metrics["baselines"]["seasonal_naive"]
    log.info(
        "%s: MASE %.4f (naive %.4f, seasonal naive %.4f)  sMAPE %.2f%% (seasonal naive %.2f%%)  "
        "MAE %.4g  RMSE %.4g on %d windows of %d steps -> %s, %s",
        split,
        metrics["mase"],
        metrics["baselines"]["naive"]["mase"],
        seasonal["mase"],
        metrics["smape"],
        seasonal["smape"],
        metrics["mae"],
        metrics["rmse"],
        metrics["samples"],
        metrics["horizon"],
        paths.metrics,
        paths.plots_dir,
    )
    return metrics


def draw_class_pictures(
    out_dir: Path,
    split: str,
    images_at: Callable[[np.ndarray], np.ndarray],
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    gallery_size: int,
) -> None:
    """confusion.png (heatmap with class names) and wrong.png (most confidently wrong images)
    of the images named ``split``; ``images_at`` gives the (N, C, H, W) uint8 images at the
    indices asked for (only those shown are read)."""
    from torchstages.evaluation.figures import confusion_figure, gallery_figure, save_png

    n = len(classes)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (labels, probs.argmax(1)), 1)
    save_png(
        confusion_figure(matrix, classes, f"Confusion matrix ({split}, {len(labels)} images)"),
        out_dir / "confusion.png",
    )
    wrong = mistake_order(probs, labels)
    shown = wrong[:gallery_size]
    captions = [
        f"true {_clipped(classes[labels[i]])}\n"
        f"pred {_clipped(classes[probs[i].argmax()])} ({probs[i].max():.2f})"
        for i in shown
    ]
    title = (
        f"Most confidently wrong {split} images\n{len(shown)} of {len(wrong)} mistakes shown;"
        " pred = predicted class (its probability)"
    )
    save_png(gallery_figure(images_at(shown), captions, title), out_dir / "wrong.png")


def _clipped(name: str, width: int = 24) -> str:
    """A class name short enough for a caption: a very long one would widen every column."""
    return name if len(name) <= width else name[: width - 1] + "…"
