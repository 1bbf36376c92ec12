"""PNG figures a person reads at a glance: confusion heatmap, image galleries, training curves.

Figures are built on ``matplotlib.figure.Figure`` directly (the Agg renderer, no pyplot state),
and saved without the "Software" stamp and at a fixed dpi, so the same data gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from torchstages.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "Series",
    "confusion_figure",
    "curves_figure",
    "regression_figures",
    "gallery_figure",
    "image_grid_figure",
    "save_png",
    "show_image",
    "DPI",
]

DPI = 100
# (x values, y values, legend label) of one line in a curves panel
Series = tuple[Sequence[float], Sequence[float], str]


def save_png(fig: Figure, path: Path) -> None:
    """Write ``fig`` atomically as a byte-stable PNG (no software or time metadata)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def show_image(ax: Axes, image: np.ndarray) -> None:
    """Draw one (C, H, W) uint8 image as stored: pixel blocks, raw 0..255 grey or RGB."""
    image = np.asarray(image)
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def confusion_figure(matrix: np.ndarray, classes: list[str], title: str) -> Figure:
    """Counts written in the cells, colour = share of the true class (row), class names on axes."""
    n = len(classes)
    side = min(max(4.5, 0.55 * n + 2.5), 24.0)
    fig = _new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    totals = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the true class")
    ticks = np.arange(n)
    long_names = max((len(c) for c in classes), default=0) > 3
    ax.set_xticks(
        ticks, classes, rotation=45 if long_names else 0, ha="right" if long_names else "center"
    )
    ax.set_yticks(ticks, classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if n <= 40:
        size = 10 if n <= 15 else 7
        background = _luminance(im.cmap(im.norm(share))[..., :3])
        for (i, j), count in np.ndenumerate(matrix):
            if not count:
                style = {"color": "#aaaaaa"}  # zeros stay quiet (their cells are the palest)
            elif i != j:
                # mistakes are the point of the figure: bold, and red where red stays readable
                red, contrast = _readable(background[i, j], MISTAKE_COLORS)
                color = red if contrast >= MIN_CONTRAST else _readable(background[i, j], PLAIN)[0]
                style = {"color": color, "fontweight": "bold"}
            else:
                style = {"color": _readable(background[i, j], PLAIN)[0]}
            ax.text(j, i, str(int(count)), ha="center", va="center", fontsize=size, **style)
    return fig


# text colours (dark, light); no red reads on every blue (mid blues are too close to both), so
# a mistake on a cell where neither red reaches WCAG's 3:1 for bold text is written in PLAIN
PLAIN = ("black", "white")
MISTAKE_COLORS = ("#a00000", "#ffd8d8")
MIN_CONTRAST = 3.0


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of sRGB colours in 0..1 (..., 3) -> (...)."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def _readable(background: float, colors: tuple[str, str]) -> tuple[str, float]:
    """Of (dark, light) text colours, the one with the higher WCAG contrast ratio on a cell of
    luminance ``background``, and that ratio."""
    from matplotlib.colors import to_rgb

    def contrast(color: str) -> float:
        text = float(_luminance(np.array(to_rgb(color))))
        return (max(text, background) + 0.05) / (min(text, background) + 0.05)

    return max(((c, contrast(c)) for c in colors), key=lambda pair: pair[1])


def image_grid_figure(
    rows: Sequence[np.ndarray],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    title: str,
) -> Figure:
    """One row per (N, C, H, W) uint8 array, the same N columns in each; labels on the edges."""
    n_rows, n_cols = len(rows), len(column_labels)
    fig = _new_figure(1.3 * n_cols + 1.2, 1.3 * n_rows + 0.6)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, images in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            show_image(ax, images[c])
            if r == 0:
                ax.set_title(column_labels[c], fontsize=10)
        axes[r][0].set_ylabel(row_labels[r], fontsize=10)
    fig.suptitle(title)
    return fig


def gallery_figure(
    images: np.ndarray, captions: Sequence[str], title: str, columns: int = 8
) -> Figure:
    """Images (N, C, H, W) uint8 in a grid, a caption over each; a note when there are none."""
    if len(images) == 0:
        fig = _new_figure(6.0, 1.5)
        fig.text(
            0.5,
            0.5,
            title + "\n\nnone: every image was classified correctly",
            ha="center",
            va="center",
        )
        return fig
    columns = min(columns, len(images))
    n_rows = -(-len(images) // columns)
    # columns wide enough for the longest caption line (about 0.075 inch a character at size 9),
    # so long class names do not run into their neighbours; at least 6 inches so the title fits
    longest = max(len(line) for caption in captions for line in caption.split("\n"))
    column_width = max(1.5, 0.075 * longest)
    fig = _new_figure(max(column_width * columns, 6.0), 1.75 * n_rows + 0.6)
    axes = fig.subplots(n_rows, columns, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < len(images):
            show_image(ax, images[k])
            ax.set_title(captions[k], fontsize=9)
        else:
            ax.set_axis_off()
    fig.suptitle(title)
    return fig


def curves_figure(
    panels: Sequence[tuple[str, Sequence[Series]]], title: str, best_epoch: int | None = None
) -> Figure:
    """One panel per quantity (title, lines), side by side; a dotted line marks the best epoch."""
    from matplotlib.ticker import MaxNLocator

    fig = _new_figure(4.2 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, lines) in zip(axes, panels, strict=True):
        for x, y, label in lines:
            ax.plot(x, y, marker="o", markersize=3, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", linestyle=":", label=f"best epoch {best_epoch}")
        if name == "loss" and lines and all(v > 0 for _, y, _ in lines for v in y):
            ax.set_yscale("log")  # a linear axis flattens everything after the first epochs
        ax.set_title(f"{name} (log scale)" if ax.get_yscale() == "log" else name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # no epoch 1.5
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def regression_figures(
    predicted: np.ndarray, actual: np.ndarray, split: str
) -> tuple[Figure, Figure]:
    """Predicted against actual (with the y = x line), and residuals against predicted."""
    low = float(min(predicted.min(), actual.min()))
    high = float(max(predicted.max(), actual.max()))
    scatter = _new_figure(5, 5)
    ax = scatter.subplots()
    ax.scatter(actual, predicted, s=8, alpha=0.6)
    ax.plot(
        [low, high], [low, high], color="black", linewidth=1, label="perfect: predicted = actual"
    )
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(f"Predicted vs actual ({split}, {len(actual)} rows)")
    ax.legend(loc="upper left")
    residual = _new_figure(6, 4)
    ax = residual.subplots()
    ax.scatter(predicted, actual - predicted, s=8, alpha=0.6)
    ax.axhline(0, color="black", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (actual - predicted)")
    ax.set_title(f"Residuals ({split}): a pattern here is what the model misses")
    return scatter, residual
