"""Pictures of the training run: the training curves and a grid of augmented training images.

Drawn by the validate stage from what train wrote (dvclive's per-epoch TSVs, the model card with
its augmentation settings) and ``data/processed``. Not by train itself: then every edit to a
figure would retrain the model.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from torchstages.data.augment import Streams, augment_batch, mix_batch
from torchstages.data.store import load_meta, load_split
from torchstages.evaluation.figures import Series, curves_figure, image_grid_figure, save_png
from torchstages.models.saved import load_card
from torchstages.params.train import AugmentParams

__all__ = ["draw_from_card", "draw_training_figures", "read_curve", "augmentation_sample"]

AUGMENTED_ROWS = 3  # augmented draws shown under each original
COLUMNS = 10


def draw_from_card(card_path: Path, live_dir: Path, processed_dir: Path, out_dir: Path) -> None:
    """The training figures of the model whose card is at ``card_path``."""
    card = load_card(card_path)
    if "augment" not in card:  # a table or series: curves only, of the task's metric
        metric = {"regression": "rmse", "forecast": "mae"}.get(card.get("task"), "accuracy")
        draw_curves(live_dir, out_dir, card["best"]["epoch"], metric)
        return
    draw_training_figures(
        live_dir,
        processed_dir,
        AugmentParams(**card["augment"]),
        card["seed"],
        out_dir,
        card["best"]["epoch"],
    )


def draw_training_figures(
    live_dir: Path,
    processed_dir: Path,
    augment: AugmentParams,
    seed: int,
    out_dir: Path,
    best_epoch: int | None = None,
) -> None:
    """``out_dir/curves.png`` from dvclive's TSVs, ``out_dir/augmented.png`` from the train split.

    ``best_epoch`` counts from 1, as in the model card and the figures.
    """
    draw_curves(live_dir, out_dir, best_epoch, "accuracy")
    classes = load_meta(processed_dir)["classes"]
    images, labels = load_split(processed_dir, "train")
    picked, rows = augmentation_sample(np.asarray(images), np.asarray(labels), augment, seed)
    row_labels = ["original", *(f"augmented {k + 1}" for k in range(AUGMENTED_ROWS))]
    if augment.mixes:
        row_labels.append("blended")
    title = (
        f"What the model sees: train images, then augmented (crop padding {augment.crop_padding}, "
        f"rotation ±{augment.rotation:g}°, flip {'on' if augment.hflip else 'off'})"
    )
    if more := _more_settings(augment):
        title += "\n" + ", ".join(more)
    column_labels = [str(classes[labels[i]]) for i in picked]
    save_png(image_grid_figure(rows, row_labels, column_labels, title), out_dir / "augmented.png")


def draw_curves(live_dir: Path, out_dir: Path, best_epoch: int | None, metric: str) -> None:
    """``out_dir/curves.png``: loss, the task's metric and the learning rate per epoch."""
    metrics = live_dir / "plots" / "metrics"

    def lines(name: str) -> list[Series]:
        found = [(split, read_curve(metrics / split / f"{name}.tsv")) for split in ("train", "val")]
        return [(x, y, split) for split, (x, y) in found if x]

    lr_x, lr_y = read_curve(metrics / "lr.tsv")
    panels = [
        ("loss", lines("loss")),
        (metric, lines(metric)),
        ("learning rate", [(lr_x, lr_y, "lr")] if lr_x else []),
    ]
    save_png(curves_figure(panels, "Training curves", best_epoch), out_dir / "curves.png")


def read_curve(path: Path) -> tuple[list[float], list[float]]:
    """(epochs counted from 1, values) of one dvclive TSV (``step`` then the value); empty if absent."""
    if not path.exists():
        return [], []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    return [float(r[0]) + 1 for r in rows], [float(r[1]) for r in rows]


def augmentation_sample(
    images: np.ndarray, labels: np.ndarray, augment: AugmentParams, seed: int
) -> tuple[list[int], list[np.ndarray]]:
    """Pick up to ``COLUMNS`` train images, cycling through the classes; return their indices and
    rows of uint8 (N, C, H, W): the originals, then ``AUGMENTED_ROWS`` seeded augmented draws,
    then (with mixup or cutmix) the last draw blended with itself in another order."""
    by_class = [np.flatnonzero(labels == k).tolist() for k in np.unique(labels)]
    picked: list[int] = []
    depth = 0
    while len(picked) < COLUMNS and any(depth < len(c) for c in by_class):
        picked += [c[depth] for c in by_class if depth < len(c)][: COLUMNS - len(picked)]
        depth += 1
    originals = np.asarray(images[picked])
    streams = Streams(seed)
    x = torch.from_numpy(originals).float()
    rows = [originals]
    for _ in range(AUGMENTED_ROWS):
        out = augment_batch(x, augment, streams)
        rows.append(out.round().clamp(0, 255).to(torch.uint8).numpy())
    if augment.mixes:  # blending is linear: on raw pixels it looks as on normalised ones
        blended = mix_batch(out, augment, streams("mix")).x
        rows.append(blended.round().clamp(0, 255).to(torch.uint8).numpy())
    return picked, rows


def _more_settings(augment: AugmentParams) -> list[str]:
    """The settings beyond crop, rotation and flip that are on, for the picture's title."""
    more = ["vertical flip on"] if augment.vflip else []
    if augment.zoom != (1.0, 1.0):
        more.append(f"zoom {augment.zoom[0]:g}-{augment.zoom[1]:g}")
    for name in ("brightness", "contrast", "saturation"):
        if value := getattr(augment, name):
            more.append(f"{name} ±{value:g}")
    for name in ("erasing", "mixup", "cutmix"):
        if value := getattr(augment, name):
            more.append(f"{name} {value:g}")
    return more
